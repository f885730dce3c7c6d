"""Checks of the restore itself: what the restore tools printed, how long they took, what the
target could not give the copy (sandbox, tablespaces, locale, rights), and the database-level
properties that could not be applied. Pure functions over ``Evidence`` and ``CheckContext``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from restorecheck.checks import registry
from restorecheck.checks.registry import CheckContext
from restorecheck.dburl import mask
from restorecheck.evidence import Evidence
from restorecheck.model import Finding

MAX_ERROR_FINDINGS = 50  # restore_errors listed one by one; the rest are counted in one more
# a statement failed for lack of rights (an unprivileged restore role on a server target)
NEEDS_RIGHTS = re.compile(
    r"permission denied|must be (?:a )?superuser|must be owner|must be (?:a )?member of|"
    r"must be able to SET ROLE|must have (?:CREATEROLE|CREATEDB|REPLICATION)|"
    r"only superusers|is not trusted", re.I)
_REFUSED_META = re.compile(r"backslash commands are restricted|\\unrestrict: wrong key|\\restrict: ")


# --- the restore tools ------------------------------------------------------------------------


@registry.on_evidence("tool_errors", produces=("restore_errors",))
def tool_errors(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    """restore_errors findings: one per error printed (up to a limit), and one for a bare exit status.

    ``data``: ``tool``, ``returncode``, ``errors`` (``message``, ``context``, ``command``,
    ``detail`` each), ``stderr_tail`` (its last lines), ``ignored`` (pg_restore's count or None)."""
    tool = str(ev.data["tool"])
    errors: Sequence[Mapping[str, Any]] = ev.data.get("errors") or ()
    returncode = int(ev.data.get("returncode") or 0)
    ignored = ev.data.get("ignored")
    out: list[Finding] = []
    for err in errors[:MAX_ERROR_FINDINGS]:
        details: dict[str, str] = {"tool": tool}
        message = str(err["message"])
        if tool == "psql" and _REFUSED_META.search(message):
            message = ("the dump holds a psql meta-command, which restorecheck never runs (psql is restricted "
                       f"with a key the dump cannot know): {message}")
            details["meta_command"] = "refused"
        if err.get("command"):
            details["command"] = mask(str(err["command"])[:500])
        if err.get("detail"):
            details["detail"] = mask(str(err["detail"])[:500])
        out.append(Finding("restore_errors", "error", err.get("context") or tool, mask(message[:700]), details))
    if len(errors) > MAX_ERROR_FINDINGS:
        out.append(Finding("restore_errors", "error", tool,
                           f"{len(errors) - MAX_ERROR_FINDINGS} more restore errors not listed"))
    if returncode != 0 and not errors:
        tail = str(ev.data.get("stderr_tail") or "") or "(no message)"
        out.append(Finding("restore_errors", "error", tool,
                           f"{tool} exited with status {returncode}: {mask(tail[:500])}"))
    if ignored is not None and ignored != len(errors):
        out.append(Finding("restore_errors", "error", tool,
                           f"{tool} reported {ignored} errors ignored on restore",
                           {"errors_ignored": ignored}))
    return out


@registry.on_evidence("nothing_restored", produces=("restore_errors",))
def nothing_restored(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    return [Finding("restore_errors", "error", ev.object, "nothing could be restored: the backup cannot be read")]


@registry.on_evidence("sandbox_missing", produces=("restore_errors",))
def sandbox_missing(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    return [Finding("restore_errors", "warning", ev.object, str(ev.data["note"])
                    + " (untrusted backups: install bubblewrap; see the README's threat model)",
                    {"sandbox": ev.data.get("sandbox")})]


@registry.on_evidence("tablespaces_missing", produces=("restore_errors",))
def tablespaces_missing(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    wanted = list(ev.data["tablespaces"])
    return [Finding(
        "restore_errors", "warning", ev.object,
        f"the dump puts objects in tablespaces the target lacks ({', '.join(wanted)}); "
        "restore into --target local, which creates them, to restore without these errors",
        {"tablespaces": wanted})]


@registry.on_evidence("restore_role", produces=("restore_errors",))
def restore_role(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    """A restore as the unprivileged role of a server target: a dump that changed the role's password;
    the statements that failed for lack of rights (among the findings before it) and how to restore them.
    ``data``: ``role``, ``password_changed``, ``roles_not_granted``."""
    name, not_granted = ev.data["role"], list(ev.data.get("roles_not_granted") or ())
    out = []
    if ev.data.get("password_changed"):
        out.append(Finding(
            "restore_errors", "error", ev.object,
            f"the backup changed the password of the restore role {name} (ALTER ROLE ... "
            "PASSWORD): whoever wrote it could log in to the target server as that unprivileged role "
            "while the restore ran (the role is dropped now); do not trust this backup"))
    denied = [f for f in prior if f.check == "restore_errors" and f.severity == "error"
              and NEEDS_RIGHTS.search(f"{f.message} {f.details.get('detail', '')}")]
    if not denied:
        return out
    owners = f"; the existing roles {', '.join(not_granted)} were not lent to it (they hold rights " \
             "on the server)" if not_granted else ""
    return [*out, Finding(
        "restore_errors", "error", ev.object,
        f"the server target restored as the unprivileged role {name} (a backup is untrusted "
        f"input), and {len(denied)} statement(s) needing more rights failed{owners}; restore into "
        "--target local, or pass --trust-backup to restore as the URL's role if you trust this backup",
        {"restore_role": name, "denied": len(denied), "roles_not_granted": not_granted})]


@registry.on_evidence("restore_timed_out", produces=("restore_timeout",))
def restore_timed_out(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    timeout = ev.data["timeout_seconds"]
    return [Finding(
        "restore_timeout", "error", ev.object,
        f"the restore did not finish within --restore-timeout {timeout:g}s: "
        f"{ev.data['tool']} and everything in its sandbox were killed; the restored copy was "
        "not checked (raise --restore-timeout if the backup is just large)",
        {"seconds": ev.data["seconds"], "timeout_seconds": timeout})]


@registry.register("rto", produces=("rto",), phase="restore")
def check_rto(ctx: CheckContext) -> list[Finding]:
    """The restore took longer than --max-restore-seconds."""
    limit, took = ctx.max_restore_seconds, ctx.restore_seconds
    if limit is None or took is None or took <= limit:
        return []
    return [Finding(
        "rto", "error", ctx.artifact_name,
        f"the restore took {took:.1f}s, more than the --max-restore-seconds target of {limit:g}s",
        {"seconds": took, "target_seconds": limit},
    )]


@registry.register("no_reference", produces=("no_reference",), phase="reference")
def check_no_reference(ctx: CheckContext) -> list[Finding]:
    if ctx.reference is not None:
        return []
    return [Finding(
        "no_reference", "warning", ctx.artifact_name,
        "no manifest and no live source to compare with: the backup restored and the checks that "
        "need no reference ran, but row counts and checksums were NOT compared with the original "
        "(give --manifest or --against, or take backups with 'restorecheck backup')",
    )]


# --- the throwaway database -------------------------------------------------------------------


def describe_locale(kw: Mapping[str, str]) -> str:
    if not kw:
        return "the target's default locale"
    parts = []
    if kw.get("lc_collate") and kw.get("lc_collate") == kw.get("lc_ctype"):
        parts.append(f"locale {kw['lc_collate']}")
    else:
        parts += [f"{k.upper()} {kw[k]}" for k in ("lc_collate", "lc_ctype") if kw.get(k)]
    provider = kw.get("locale_provider")
    if provider == "icu":
        parts.append(f"ICU locale {kw.get('icu_locale', '?')}" + (" with ICU rules" if kw.get("icu_rules") else ""))
    elif provider == "builtin":
        parts.append(f"builtin locale {kw.get('builtin_locale', '?')}")
    return ", ".join(parts)


@registry.on_evidence("locale_fallback", produces=("database",))
def locale_fallback(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    """``data``: ``source`` (reference or dump), ``requested``, ``used``, ``error``."""
    requested, used, reason = ev.data["requested"], ev.data["used"], ev.data.get("error")
    return [Finding(
        "database", "info", ev.object,
        f"the throwaway database could not get the {ev.data['source']}'s {describe_locale(requested)}: "
        f"{reason}; it has {describe_locale(used)}. Text sorts and compares differently there (ORDER BY, "
        "text range partitions, non-deterministic collations); row counts and checksums do not depend "
        "on it. To restore under the same locale, install it on this machine (the distribution's "
        "locales, a PostgreSQL built with ICU) or give --target a server that has it",
        {"locale_fallback": True, "requested": requested, "used": used, "error": reason})]


# --- database-level properties, applied after the fingerprint ---------------------------------


@registry.on_evidence("property_refused", produces=("database",))
def property_refused(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    hostile = bool(ev.data.get("hostile"))
    return [Finding(
        "database", "error" if hostile else "warning", ev.object,
        f"the backup's database properties hold '{ev.data['statement']}': not applied ({ev.data['reason']})"
        + ("; pg_dump never writes this, so the backup was edited: do not trust it" if hostile else
           "; it is compared as the backup carries it"),
        {"statement": ev.data["statement"], "refused": True, "hostile": hostile})]


@registry.on_evidence("properties_unreadable", produces=("database",))
def properties_unreadable(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    return [Finding("database", "warning", ev.object,
                    f"the database properties could not be applied or read: {ev.data['error']}")]


@registry.on_evidence("property_not_applied", produces=("database",))
def property_not_applied(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    """``data``: ``property``, ``error``, ``unprivileged`` (the restore ran as a server target's
    unprivileged role: when the error is one of rights, the remedy says how to apply it)."""
    name, error = ev.data["property"], str(ev.data["error"])
    remedy = ("; the restore ran as an unprivileged role on this server target: --target local, or "
              "--trust-backup if you trust this backup, applies it" if ev.data.get("unprivileged")
              and NEEDS_RIGHTS.search(error) else "")
    return [Finding(
        "database", "warning", ev.object,
        f"the backup carries the database property {name}, but this target could not apply it: "
        f"{error}{remedy}; it is compared as the backup carries it",
        {"property": name, "error": error, "not_applied": True})]


def _describe_carried(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_describe_carried(v)}" if not isinstance(v, dict) else f"{k}: {_describe_carried(v)}"
                         for k, v in value.items())
    return str(value)


@registry.on_evidence("properties_carried", produces=("database",))
def properties_carried(ev: Evidence, prior: Sequence[Finding]) -> list[Finding]:
    """With no reference to compare them with: what the backup carries about its database.
    ``data``: ``carried`` (whether it carries any), ``summary``."""
    summary = dict(ev.data.get("summary") or {})
    return [Finding(
        "database", "info", ev.object,
        ("the backup carries these database properties: " + "; ".join(
            f"{k} {_describe_carried(v)}" for k, v in summary.items())) if ev.data.get("carried") else
        "the backup carries no database properties (settings, comment, owner, privileges): a plain "
        "dump made without --create; whatever the source had there is not in it",
        {"carried": summary})]
