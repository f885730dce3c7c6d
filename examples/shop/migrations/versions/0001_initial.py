"""tables, foreign keys, the invoice number sequence

Revision ID: 0001
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import CreateSequence, DropSequence

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CreateSequence(sa.Sequence("invoice_number_seq", start=1000)))
    op.create_table("customers",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("tenant", sa.String(40), nullable=False),
                    sa.Column("email", sa.String(200), nullable=False, unique=True),
                    sa.Column("name", sa.String(200), nullable=False))
    op.create_table("products",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("sku", sa.String(40), nullable=False, unique=True),
                    sa.Column("name", sa.String(200), nullable=False),
                    sa.Column("price_cents", sa.Integer, nullable=False),
                    sa.CheckConstraint("price_cents >= 0", name="products_price_nonnegative"))
    op.create_table("orders",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("tenant", sa.String(40), nullable=False),
                    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id", ondelete="RESTRICT"),
                              nullable=False),
                    sa.Column("invoice_no", sa.BigInteger, nullable=False, unique=True),
                    sa.Column("status", sa.String(20), nullable=False),
                    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                              nullable=False))
    op.create_index("orders_customer_idx", "orders", ["customer_id"])
    op.create_table("order_items",
                    sa.Column("order_id", sa.Integer, sa.ForeignKey("orders.id", ondelete="CASCADE"),
                              primary_key=True),
                    sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id"), primary_key=True),
                    sa.Column("quantity", sa.Integer, nullable=False),
                    sa.Column("unit_price_cents", sa.Integer, nullable=False))


def downgrade() -> None:
    for table in ("order_items", "orders", "products", "customers"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DropSequence(sa.Sequence("invoice_number_seq")))
