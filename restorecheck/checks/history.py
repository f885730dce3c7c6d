"""Between nights: this run against the job's earlier runs in the history (phase ``history``).

``nightly`` (and ``verify``/``drill --history``) build a ``model.Baseline`` from the history database:
the job's last verified run (its source's row count per table, its backup's size) and the restore
times of its recent verified runs. These checks are pure functions of it and of this run's facts.

- ``drift``: a table of the source vanished, emptied, or lost more than ``drift_max_loss`` of its
  rows since the last verified run. A faithful backup of a database that lost data yesterday passes
  every other check; this one does not let the loss pass silently.
- ``rto_trend``: the restore took more than ``rto_trend_factor`` times the median of the last
  ``rto_trend_runs`` verified runs (once ``rto_trend_min_runs`` are recorded, and at least
  ``rto_trend_min_seconds`` more: a 0.2 s restore that takes 0.4 s is noise, not a trend).
- ``backup_size``: the backup shrank by more than ``backup_size_max_shrink`` since the last verified run.

Each has its own severity (warning by default: the README's 'Nightly job' says why).
"""

from __future__ import annotations

import statistics

from restorecheck.checks import registry
from restorecheck.checks.registry import CheckContext
from restorecheck.model import Finding


def _since(ctx: CheckContext) -> str:
    assert ctx.baseline is not None
    when = ctx.baseline.last_started_at
    return f"since the last verified run ({when})" if when else "since the last verified run"


def _when(ctx: CheckContext) -> str:
    assert ctx.baseline is not None
    return f" ({ctx.baseline.last_started_at})" if ctx.baseline.last_started_at else ""


@registry.register("drift", produces=("drift",), phase="history", order=100)
def check_drift(ctx: CheckContext) -> list[Finding]:
    base = ctx.baseline
    if base is None or base.last_run_id is None or not ctx.tables_known:
        return []
    limit, severity = base.thresholds.drift_max_loss, base.thresholds.drift_severity
    now = {t.name: (t.rows_expected if t.rows_expected is not None else t.rows_restored) for t in ctx.tables}
    out: list[Finding] = []
    for name, before in sorted(base.table_rows.items()):
        details = {"rows_before": before, "run_before": base.last_run_id}
        if name not in now:
            out.append(Finding("drift", severity, name, f"the table vanished from the source {_since(ctx)}, "
                               f"which had {before if before is not None else 'an unknown number of'} rows",
                               {**details, "rows_now": None, "kind": "vanished"}))
            continue
        after = now[name]
        if not before or after is None:
            continue
        if after == 0:
            out.append(Finding("drift", severity, name, f"the table was emptied {_since(ctx)}: "
                               f"{before:,} rows then, 0 now", {**details, "rows_now": 0, "kind": "emptied"}))
        elif after < before and (before - after) / before > limit:
            share = (before - after) / before
            out.append(Finding("drift", severity, name,
                               f"the source lost {before - after:,} of {before:,} rows ({share:.1%}) "
                               f"{_since(ctx)}, more than drift_max_loss {limit:.0%}",
                               {**details, "rows_now": after, "kind": "lost", "share": round(share, 4)}))
    return out


@registry.register("rto_trend", produces=("rto_trend",), phase="history", order=200)
def check_rto_trend(ctx: CheckContext) -> list[Finding]:
    base, took = ctx.baseline, ctx.restore_seconds
    if base is None or took is None:
        return []
    t = base.thresholds
    recent = list(base.restore_seconds[: t.rto_trend_runs])
    if len(recent) < t.rto_trend_min_runs:
        return []
    median = statistics.median(recent)
    if took > t.rto_trend_factor * median and took - median >= t.rto_trend_min_seconds:
        return [Finding("rto_trend", t.rto_trend_severity, ctx.artifact_name or base.job,
                        f"the restore took {took:.1f}s, {took / median if median else float('inf'):.1f}x the median "
                        f"{median:.1f}s of the last {len(recent)} verified runs (rto_trend_factor {t.rto_trend_factor:g})",
                        {"seconds": took, "median_seconds": median, "runs": len(recent),
                         "factor": t.rto_trend_factor})]
    return []


@registry.register("backup_size", produces=("backup_size",), phase="history", order=300)
def check_backup_size(ctx: CheckContext) -> list[Finding]:
    base, size = ctx.baseline, ctx.backup_bytes
    if base is None or size is None or not base.backup_bytes:
        return []
    t = base.thresholds
    shrink = (base.backup_bytes - size) / base.backup_bytes
    if shrink > t.backup_size_max_shrink:
        return [Finding("backup_size", t.backup_size_severity, ctx.artifact_name or base.job,
                        f"the backup is {size:,} bytes, {shrink:.1%} smaller than the {base.backup_bytes:,} bytes "
                        f"of the last verified run{_when(ctx)} (backup_size_max_shrink {t.backup_size_max_shrink:.0%})",
                        {"bytes": size, "bytes_before": base.backup_bytes, "shrink": round(shrink, 4)})]
    return []
