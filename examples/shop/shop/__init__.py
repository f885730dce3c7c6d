"""A small shop: customers, products, orders (row-level security per tenant), an invoice number
sequence, and an append-only audit log whose rows form a hash chain. PostgreSQL in production,
SQLite for the single-user "personal edition" of the same schema."""
