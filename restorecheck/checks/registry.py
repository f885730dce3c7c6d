"""The registry of checks: every finding restorecheck reports is made by a function registered here.

Two kinds of registered functions, both pure (no database, no file, no clock):

- ``@register(name, produces=..., phase=..., engines=..., order=...)``: ``fn(ctx) -> list[Finding]``
  over a ``CheckContext`` (the reference and restored manifests, the restore's timings and
  options). ``pipeline`` (and ``checks.compare.compare_manifests``) call ``run(phase, ctx)``,
  which runs every check of that phase that applies to ``ctx.engine``, by ``order`` then name.
- ``@on_evidence(kind, produces=...)``: ``fn(evidence, prior) -> list[Finding]`` for one
  ``evidence.EvidenceKind`` (what an engine or a source observed while it worked); ``convert``
  turns a list of evidence into findings in the order it was observed (``prior``: the findings
  made so far from the same list, for a check that sums up the ones before it).

Every module of the ``checks`` package is imported before the registry is read, so a new check is
one function in one file (a new module or an existing one) and its test; nothing else lists it.
``produces`` names the check ids a function can report; ``tests/unit/test_check_registry.py``
holds the registry to covering every id of ``model.CHECK_IDS`` and every evidence kind.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from restorecheck.evidence import Evidence, EvidenceKind
from restorecheck.model import Baseline, CheckId, Finding, Manifest, TableResult

# compare: reference x restored manifest (compare_manifests); self: the restored manifest alone
# (a reference, when there is one, says inherited or introduced); restore: the restore's timings;
# reference: whether there is a reference at all; history: this run against the job's earlier runs
# (the nightly job: ctx.baseline, run by nightly after the pipeline gave its report)
Phase = Literal["compare", "self", "restore", "reference", "history"]
PHASES: tuple[Phase, ...] = ("restore", "self", "compare", "reference", "history")


@dataclass
class CheckContext:
    """What a check may look at. Built by ``pipeline`` (verify, drill) and ``compare_manifests``."""

    engine: str
    reference: Manifest | None = None
    restored: Manifest | None = None
    # the reference was read from a live database, or its sequences before the dump's (PITFALLS F2):
    # the restored sequences may be ahead of it, never behind
    live_reference: bool = False
    max_keys: int = 20
    evidence: Sequence[Evidence] = ()  # what the restore observed (kinds, not findings)
    artifact_name: str = ""  # the backup's file name (the object of artifact-wide findings)
    restore_seconds: float | None = None
    max_restore_seconds: float | None = None  # --max-restore-seconds
    memo: dict[str, Any] = field(default_factory=dict)  # results two checks share (table comparison)
    # phase history: the job's earlier runs, and this run's tables (the source's rows) and backup size
    baseline: Baseline | None = None
    tables: Sequence[TableResult] = ()
    tables_known: bool = False  # this run learnt the source's tables (else drift cannot be judged)
    backup_bytes: int | None = None

    def observed(self, kind: EvidenceKind) -> bool:
        return any(e.kind == kind for e in self.evidence)


CheckFn = Callable[[CheckContext], list[Finding]]
EvidenceFn = Callable[[Evidence, Sequence[Finding]], list[Finding]]


@dataclass(frozen=True)
class Check:
    name: str
    produces: tuple[CheckId, ...]
    phase: Phase
    engines: tuple[str, ...] | None  # None: every engine
    order: int
    fn: CheckFn

    def applies_to(self, engine: str) -> bool:
        return self.engines is None or engine in self.engines


@dataclass(frozen=True)
class EvidenceCheck:
    kind: EvidenceKind
    produces: tuple[CheckId, ...]
    fn: EvidenceFn


_CHECKS: dict[str, Check] = {}
_EVIDENCE: dict[str, EvidenceCheck] = {}
_loaded = False


def register(name: str, *, produces: Iterable[CheckId], phase: Phase, engines: Iterable[str] | None = None,
             order: int = 500) -> Callable[[CheckFn], CheckFn]:
    """Register ``fn(ctx) -> list[Finding]`` as the check ``name`` (unique) of ``phase``."""

    def add(fn: CheckFn) -> CheckFn:
        if name in _CHECKS and _CHECKS[name].fn is not fn:
            raise ValueError(f"check {name!r} is registered twice")
        _CHECKS[name] = Check(name, tuple(produces), phase, None if engines is None else tuple(engines), order, fn)
        return fn

    return add


def on_evidence(kind: EvidenceKind, *, produces: Iterable[CheckId]) -> Callable[[EvidenceFn], EvidenceFn]:
    """Register ``fn(evidence, prior) -> list[Finding]`` as the judge of evidence of ``kind``."""

    def add(fn: EvidenceFn) -> EvidenceFn:
        if kind in _EVIDENCE and _EVIDENCE[kind].fn is not fn:
            raise ValueError(f"evidence {kind!r} has two checks")
        _EVIDENCE[kind] = EvidenceCheck(kind, tuple(produces), fn)
        return fn

    return add


def _load() -> None:
    """Import every module of the ``checks`` package (their decorators fill the registry)."""
    global _loaded
    if _loaded:
        return
    import restorecheck.checks as package

    for mod in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{mod.name}")
    _loaded = True


def checks(phase: Phase | None = None, engine: str | None = None) -> list[Check]:
    """The registered checks (of ``phase``, applying to ``engine``), in the order they run."""
    _load()
    found = [c for c in _CHECKS.values()
             if (phase is None or c.phase == phase) and (engine is None or c.applies_to(engine))]
    return sorted(found, key=lambda c: (c.order, c.name))


def evidence_checks() -> dict[str, EvidenceCheck]:
    _load()
    return dict(_EVIDENCE)


def run(phase: Phase, ctx: CheckContext) -> list[Finding]:
    """Every check of ``phase`` that applies to ``ctx.engine``, in order; their findings."""
    out: list[Finding] = []
    for check in checks(phase, ctx.engine):
        out += _declared(check.name, check.produces, check.fn(ctx))
    return out


def convert(evidence: Iterable[Evidence], prior: Sequence[Finding] = ()) -> list[Finding]:
    """The findings of each piece of ``evidence``, in the order it was observed."""
    _load()
    out: list[Finding] = []
    for ev in evidence:
        judge = _EVIDENCE.get(ev.kind)
        if judge is None:  # EvidenceKind and the registry are tested to match
            raise LookupError(f"no check is registered for evidence {ev.kind!r}")
        out += _declared(f"evidence {ev.kind}", judge.produces, judge.fn(ev, [*prior, *out]))
    return out


def _declared(name: str, produces: tuple[CheckId, ...], found: list[Finding]) -> list[Finding]:
    """``found``, once each finding's id is one its check declared (``produces`` is what the
    registry's coverage test counts on)."""
    for f in found:
        if f.check not in produces:
            raise RuntimeError(f"check {name} made a {f.check!r} finding but declares only {produces}")
    return found
