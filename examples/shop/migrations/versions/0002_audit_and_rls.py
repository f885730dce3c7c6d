"""the append-only audit log (hash chain), row-level security on orders

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("audit_log",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("actor", sa.String(100), nullable=False),
                    sa.Column("event", sa.String(100), nullable=False),
                    sa.Column("payload", sa.Text, nullable=False),
                    sa.Column("prev_hash", sa.String(64), nullable=False),
                    sa.Column("hash", sa.String(64), nullable=False, unique=True))
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                       "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END")
        return
    op.execute("""
        CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
        END $$""")
    op.execute("CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log "
               "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()")
    # the application's role: a cluster-wide object, so made only where it is missing
    op.execute("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'shop_app') THEN "
               "CREATE ROLE shop_app NOLOGIN; END IF; END $$")
    op.execute("GRANT SELECT, INSERT, UPDATE ON customers, products, orders, order_items TO shop_app")
    op.execute("GRANT SELECT, INSERT ON audit_log TO shop_app")
    op.execute("GRANT USAGE ON SEQUENCE invoice_number_seq TO shop_app")
    op.execute("ALTER TABLE orders ENABLE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY orders_by_tenant ON orders TO shop_app "
               "USING (tenant = current_setting('shop.tenant', true)) "
               "WITH CHECK (tenant = current_setting('shop.tenant', true))")
    op.execute("COMMENT ON TABLE audit_log IS 'append-only; hash = sha256(prev_hash, actor, event, payload)'")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP POLICY orders_by_tenant ON orders")
        op.execute("ALTER TABLE orders DISABLE ROW LEVEL SECURITY")
    op.drop_table("audit_log")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_log_append_only()")
