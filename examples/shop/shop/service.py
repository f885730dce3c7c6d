"""What the application does: customers, products, orders, and the audit chain."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text

from shop.models import INVOICE_SEQ, AuditLog, Customer, Order, OrderItem, Product

GENESIS = "0" * 64


def entry_hash(prev_hash: str, actor: str, event: str, payload: str) -> str:
    return hashlib.sha256(json.dumps([prev_hash, actor, event, payload]).encode()).hexdigest()


def audit(conn: Connection, actor: str, event: str, data: dict[str, Any]) -> str:
    """Append one entry to the chain (serialised by a lock on PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE"))
    prev = conn.execute(select(AuditLog.hash).order_by(AuditLog.id.desc()).limit(1)).scalar() or GENESIS
    payload = json.dumps(data, sort_keys=True)
    digest = entry_hash(prev, actor, event, payload)
    conn.execute(insert(AuditLog).values(actor=actor, event=event, payload=payload, prev_hash=prev, hash=digest))
    return digest


def verify_chain(conn: Connection) -> int:
    """The number of entries, after checking every link; ValueError at the first broken one."""
    prev = GENESIS
    n = 0
    for row in conn.execute(select(AuditLog.__table__).order_by(AuditLog.id)):
        if row.prev_hash != prev or row.hash != entry_hash(prev, row.actor, row.event, row.payload):
            raise ValueError(f"audit chain broken at entry {row.id}")
        prev, n = row.hash, n + 1
    return n


def next_invoice_no(conn: Connection) -> int:
    if conn.dialect.name == "postgresql":
        return int(conn.execute(INVOICE_SEQ.next_value()).scalar_one())
    return int(conn.execute(text("SELECT coalesce(max(invoice_no), 999) + 1 FROM orders")).scalar_one())


def place_order(conn: Connection, customer_id: int, items: dict[int, int], actor: str = "shop") -> int:
    tenant = conn.execute(select(Customer.tenant).where(Customer.id == customer_id)).scalar_one()
    order_id = conn.execute(insert(Order).values(tenant=tenant, customer_id=customer_id,
                                                 invoice_no=next_invoice_no(conn), status="placed")
                            .returning(Order.id)).scalar_one()
    for product_id, qty in sorted(items.items()):
        price = conn.execute(select(Product.price_cents).where(Product.id == product_id)).scalar_one()
        conn.execute(insert(OrderItem).values(order_id=order_id, product_id=product_id, quantity=qty,
                                              unit_price_cents=price))
    audit(conn, actor, "order.placed", {"order": order_id, "items": {str(k): v for k, v in items.items()}})
    return order_id


def seed(engine: Engine, *, customers: int = 20, products: int = 12, orders: int = 60, seed: int = 7) -> None:
    """A deterministic little shop."""
    rnd = random.Random(seed)
    with engine.begin() as conn:
        for i in range(1, customers + 1):
            conn.execute(insert(Customer).values(id=i, tenant=f"tenant{i % 3}", email=f"c{i}@example.org",
                                                 name=f"Customer {i}"))
            audit(conn, "admin", "customer.created", {"customer": i})
        for i in range(1, products + 1):
            conn.execute(insert(Product).values(id=i, sku=f"SKU-{i:04d}", name=f"Product {i}",
                                                price_cents=rnd.randint(100, 10_000)))
        for _ in range(orders):
            picks = rnd.sample(range(1, products + 1), rnd.randint(1, 4))
            place_order(conn, rnd.randint(1, customers), {p: rnd.randint(1, 5) for p in picks})
