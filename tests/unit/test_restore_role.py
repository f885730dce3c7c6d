"""The unprivileged restore role of server targets, without a server: how the restore tools
connect as it, and the finding that explains statements it had no right to run."""

from __future__ import annotations

from restorecheck.checks.registry import convert
from restorecheck.dburl import PostgresRef
from restorecheck.engines.postgres import _restore_role_evidence
from restorecheck.model import Finding
from restorecheck.provisioners.restore_role import RestoreRole

ADMIN = PostgresRef({"host": "db.example", "port": "5433", "user": "admin", "dbname": "postgres",
                     "sslmode": "require", "passfile": "/root/.pgpass"}, "admin-secret")
ROLE = RestoreRole("restorecheck_0123456789ab", "restorecheck_0123456789ab_owner", "role-secret", ADMIN)


def test_the_restore_tools_connect_as_the_role_with_its_password_only() -> None:
    env = ROLE.ref("restorecheck_feed").child_env()
    assert env["PGUSER"] == "restorecheck_0123456789ab" and env["PGPASSWORD"] == "role-secret"
    assert env["PGDATABASE"] == "restorecheck_feed"
    assert env["PGHOST"] == "db.example" and env["PGPORT"] == "5433" and env["PGSSLMODE"] == "require"
    assert "PGPASSFILE" not in env  # the admin's passfile is not offered to the restore
    assert "admin-secret" not in repr(ROLE) and "role-secret" not in repr(ROLE)


def test_denied_statements_get_one_finding_naming_the_fix() -> None:
    errors = [
        Finding("restore_errors", "error", "TABLE public.t", "must be able to SET ROLE \"postgres\""),
        Finding("restore_errors", "error", "line 9", "permission denied to create event trigger \"x\""),
        Finding("restore_errors", "error", "line 12", "relation \"t\" already exists"),
    ]
    out = convert(_restore_role_evidence(ROLE, ["postgres"], "shop.dump"), errors)
    assert len(out) == 1
    f = out[0]
    assert f.check == "restore_errors" and f.severity == "error"
    assert "unprivileged role restorecheck_0123456789ab" in f.message and "2 statement(s)" in f.message
    assert "postgres" in f.message and "--target local" in f.message and "--trust-backup" in f.message
    assert f.details["roles_not_granted"] == ["postgres"]


def test_no_finding_when_nothing_was_denied_or_the_restore_was_trusted() -> None:
    errors = [Finding("restore_errors", "error", "line 12", "relation \"t\" already exists")]
    assert convert(_restore_role_evidence(ROLE, [], "shop.dump"), errors) == []
    denied = [Finding("restore_errors", "error", "line 1", "permission denied for schema public")]
    assert convert(_restore_role_evidence(None, [], "shop.dump"), denied) == []
