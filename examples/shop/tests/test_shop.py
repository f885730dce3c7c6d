"""The shop's test suite. PostgreSQL comes from restorecheck's ``throwaway_postgres`` fixture (a
fresh database per test on a throwaway server started once per session), the backup checks from
its ``restorecheck`` fixture: both arrive with ``pip install restorecheck``, no conftest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from restorecheck.pytest_plugin import RestoreCheckFailed
from sqlalchemy.exc import DBAPIError

from shop import migrate, service

TABLES = {"public.customers", "public.products", "public.orders", "public.order_items", "public.audit_log",
          "public.alembic_version"}


def sqlalchemy_url(libpq_url: str) -> str:
    return libpq_url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def shop_pg(throwaway_postgres: str) -> Iterator[sa.Engine]:
    """The shop on PostgreSQL: migrated to head and seeded."""
    engine = sa.create_engine(sqlalchemy_url(throwaway_postgres))
    migrate.upgrade(engine)
    service.seed(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def shop_sqlite(tmp_path: Path) -> Iterator[Path]:
    """The personal edition: the same migrations and data in a SQLite file."""
    path = tmp_path / "shop.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    service.seed(engine)
    engine.dispose()
    yield path


def test_migrations_upgrade_on_throwaway_postgres(throwaway_postgres: str) -> None:
    engine = sa.create_engine(sqlalchemy_url(throwaway_postgres))
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0002"
            assert set(sa.inspect(conn).get_table_names()) == {t.split(".")[1] for t in TABLES}
            assert conn.execute(sa.text("SELECT relrowsecurity FROM pg_class WHERE relname = 'orders'")).scalar()
            assert conn.execute(sa.text("SELECT polname FROM pg_policy")).scalars().all() == ["orders_by_tenant"]
            assert conn.execute(sa.text("SELECT start_value FROM pg_sequences "
                                        "WHERE sequencename = 'invoice_number_seq'")).scalar() == 1000
    finally:
        engine.dispose()


def test_orders_are_isolated_by_tenant_and_the_audit_log_is_append_only(shop_pg: sa.Engine) -> None:
    with shop_pg.connect() as conn:
        assert service.verify_chain(conn) == 20 + 60
        conn.execute(sa.text("SET ROLE shop_app"))
        conn.execute(sa.text("SELECT set_config('shop.tenant', 'tenant1', false)"))
        tenants = conn.execute(sa.text("SELECT DISTINCT tenant FROM orders")).scalars().all()
        assert tenants == ["tenant1"]
        conn.rollback()
    with pytest.raises(DBAPIError, match="audit_log is append-only"), shop_pg.begin() as conn:
        conn.execute(sa.text("UPDATE audit_log SET actor = 'mallory' WHERE id = 1"))


def test_backup_restores_postgres(restorecheck, shop_pg: sa.Engine) -> None:  # type: ignore[no-untyped-def]
    report = restorecheck.assert_restores(shop_pg)  # a SQLAlchemy Engine is a source too
    assert {t.name for t in report.tables} == TABLES
    rows = {t.name: t.rows_restored for t in report.tables}
    assert rows["public.audit_log"] == 80 and rows["public.orders"] == 60
    with shop_pg.connect() as conn:  # the source was only read
        assert service.verify_chain(conn) == 80


def test_backup_restores_sqlite_edition(restorecheck, shop_sqlite: Path) -> None:  # type: ignore[no-untyped-def]
    report = restorecheck.assert_restores(shop_sqlite)
    assert report.engine == "sqlite"
    assert {t.name for t in report.tables} == {t.replace("public.", "main.") for t in TABLES}
    assert all(t.match for t in report.tables)


def test_a_backup_that_loses_a_table_s_data_fails(restorecheck, shop_pg: sa.Engine) -> None:  # type: ignore[no-untyped-def]
    # pg_dump --exclude-table-data: the backup keeps the table, not its rows; the manifest taken in
    # the same snapshot says what the rows were
    with pytest.raises(RestoreCheckFailed) as failed:
        restorecheck.assert_restores(shop_pg, exclude_table_data=["public.audit_log"])
    message = str(failed.value)
    assert "row_count       public.audit_log: expected 80 rows, restored 0" in message
    assert [f.check for f in failed.value.report.errors] == ["row_count"]
    assert [t.name for t in failed.value.report.failing_tables] == ["public.audit_log"]


def test_a_truncated_backup_file_fails(restorecheck, shop_pg: sa.Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import restorecheck as rc

    taken = rc.backup(shop_pg, tmp_path / "backups", name="shop")
    assert restorecheck.assert_verifies(taken.artifact.path, manifest=taken.manifest_path).ok
    broken = tmp_path / "shop-cut.dump"
    data = Path(taken.artifact.path).read_bytes()
    broken.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(RestoreCheckFailed) as failed:
        restorecheck.assert_verifies(broken, manifest=taken.manifest_path)
    checks = {f.check for f in failed.value.report.errors}
    assert "restore_errors" in checks or "backup_file" in checks, str(failed.value)
    assert "shop-cut.dump" in str(failed.value)
