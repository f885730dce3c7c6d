"""Row generators of the PostgreSQL known dataset: pure functions of (scale, seed).

Each ``TableSpec`` yields rows as tuples in the column order it names, ready for
``COPY ... FROM STDIN`` (text format). Values whose PostgreSQL text form matters (ranges,
intervals, BC dates, numeric specials, composite arrays) are produced as strings; the rest as
Python values that psycopg renders unambiguously. Every row count is ``base_rows * scale``
exactly, so ``--scale`` grows each table linearly.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from restorecheck.seed.values import (
    AWKWARD_TEXT,
    WORDS,
    Row,
    TableSpec,
    awkward,
    blob,
    instant_between,
    instant_near_dst,
    person,
    rng_for,
    words,
)

LO_BASE_OID = 1_380_000_000  # large objects get the fixed OIDs LO_BASE_OID + 0, 1, 2, ...
LO_PER_SCALE = 5
TENANTS = ("acme", "globex", "initech", "umbrella")
DOMAINS = ("example.com", "example.org", "sub.example.co.uk", "xn--bcher-kva.example", "EXAMPLE.NET")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)


def _j(obj: Any) -> Jsonb:
    return Jsonb(obj, dumps=_dumps)


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _num_38_18(rng: Any, int_digits: int) -> str:
    sign = "-" if rng.getrandbits(1) else ""
    whole = rng.randrange(10**int_digits)
    frac = rng.randrange(10**18)
    return f"{sign}{whole}.{frac:018d}"


def _ts_text(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S.%f+00")


def sku_for(j: int) -> str:
    """The SKU of product number ``j`` (0-based): three letters and five digits, unique."""
    block, num = divmod(j, 100_000)
    letters = "".join(chr(65 + (block // 26**k) % 26) for k in (2, 1, 0))
    return f"{letters}-{num:05d}"


# --- rc_shop ---------------------------------------------------------------------------------

def gen_categories(scale: int, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "rc_shop.categories")
    paths: dict[int, list[str]] = {}
    for i in range(40 * scale):
        cid = i + 1
        name = words(rng, 1 + rng.randrange(2)).title()
        if i % 8 == 0:
            parent = None
            paths = {}
            path = [name]
        else:
            parent = (i - i % 8) + 1 + rng.randrange(i % 8)
            path = [*paths[parent], name]
        paths[cid] = path
        yield (cid, parent, name, path)


def gen_customers(scale: int, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "rc_shop.customers")
    start = datetime(2020, 1, 1, tzinfo=UTC)
    for i in range(200 * scale):
        cid = i + 1
        email = f"{rng.choice(WORDS)}.{cid}@{DOMAINS[i % len(DOMAINS)]}"
        name = person(rng)
        nickname: str | None = (None, "", awkward(i), rng.choice(WORDS))[i % 4]
        referred_by = None if i % 3 == 0 or i == 0 else rng.randrange(1, cid)
        tags: list[str | None] | None
        k = i % 6
        if k == 0:
            tags = None
        elif k == 1:
            tags = []
        elif k == 2:
            tags = [rng.choice(WORDS), None, ""]
        else:
            picked: list[str | None] = [rng.choice(WORDS) for _ in range(k)]
            tags = [*picked, awkward(i + k)]
        profile = {
            "tier": ("bronze", "silver", "gold", None)[i % 4],
            "score": round(rng.random() * 100, 6),
            "visits": rng.randrange(10**6),
            "big": 2**70 + i,
            "langs": [rng.choice(("de", "en", "fr", "ja", "pt-BR")) for _ in range(i % 3)],
            "nested": {"a": {"b": [1, 2.5, None, True, False, "x"]}, "empty": {}},
            "note": awkward(i * 7),
        }
        created = instant_between(rng, start, 4 * 365 * 86400)
        yield (cid, email, name, nickname, referred_by, tags, _j(profile), created)


def gen_products(scale: int, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "rc_shop.products")
    n_cat = 40 * scale
    specials = (float("nan"), float("inf"), float("-inf"), -0.0)
    for i in range(100 * scale):
        sku = sku_for(i)
        category = None if i % 10 == 9 else rng.randrange(1, n_cat + 1)
        title = f"{words(rng, 2).title()} {awkward(i * 3)}"
        price = _money(rng.randrange(0, 10**7))
        weight: float | None = None if i % 11 == 0 else round(rng.random() * 80, 3)
        dims: list[float | None] | None
        if i % 13 == 0:
            dims = None
        elif i % 13 == 1:
            dims = [specials[(i // 13) % 4], 1.0, None]
        else:
            dims = [round(rng.random() * 200, 2) for _ in range(3)]
        attrs = {
            "color": rng.choice(("red", "green", "blue", "\u00e9cru", "\u9ed2")),
            "sizes": [rng.randrange(30, 50) for _ in range(i % 4)],
            "ratio": 0.1 + 0.2,
            "unicode": "\u2603 \U0001f30d",
            "quote": "it's \"quoted\" \\ back",
        }
        photo: bytes | None
        m = i % 9
        photo = None if m == 0 else b"" if m == 1 else blob(rng, 8 + rng.randrange(120))
        manual = LO_BASE_OID + i // 20 if i % 20 == 0 else None
        discontinued = (True, False, None)[i % 3]
        yield (sku, category, title, price, weight, dims, _j(attrs), photo, manual, discontinued)


def order_key(i: int) -> tuple[int, int]:
    """(region, order_no) of order number ``i``."""
    return (i % 4 + 1, i // 4 + 1)


def gen_orders(scale: int, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "rc_shop.orders")
    n_cust = 200 * scale
    statuses = ("new", "paid", "shipped", "cancelled", "refunded")
    for i in range(500 * scale):
        region, order_no = order_key(i)
        placed = instant_near_dst(rng, i)
        w = i % 5
        if w == 0:
            window: str | None = None
        elif w == 1:
            window = "empty"
        elif w == 2:
            window = f"[{_ts_text(placed)},)"
        else:
            end = placed + timedelta(days=1 + rng.randrange(10), seconds=rng.randrange(86400))
            window = f"[\"{_ts_text(placed)}\",\"{_ts_text(end)}\")"
        note = (None, "", awkward(i))[i % 3]
        yield (region, order_no, i % n_cust + 1, statuses[rng.randrange(4)], placed, window,
               _money(rng.randrange(1, 10**6)), note)


def gen_order_lines(scale: int, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "rc_shop.order_lines")
    n_prod = 100 * scale
    for i in range(500 * scale):
        region, order_no = order_key(i)
        for line in range(1, 2 + i % 5):
            yield (region, order_no, line, sku_for(rng.randrange(n_prod)), 1 + rng.randrange(20),
                   _money(rng.randrange(1, 10**5)))


def gen_gift_cards(scale: int, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "rc_shop.Gift Cards")
    n_cust = 200 * scale
    for i in range(20 * scale):
        v = i % 4
        valid = ("empty", "[2024-01-01,2025-01-01)", "(,2024-12-31]", None)[v]
        issued = None if i % 5 == 4 else rng.randrange(1, n_cust + 1)
        yield (f"GC-{i:08d}-{rng.getrandbits(32):08x}", _money(rng.randrange(0, 50000)), issued, valid)


# --- rc_ledger -------------------------------------------------------------------------------

def gen_accounts(scale: int, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "rc_ledger.accounts")
    for i in range(50 * scale):
        opened = date(2015, 1, 1) + timedelta(days=rng.randrange(3650))
        limits = None if i % 4 == 0 else ["1000", "0.000000000000000001", None, "-12345678901234567890.5"][: 1 + i % 4]
        yield (i + 1, f"ACC{i:08d}", TENANTS[i % len(TENANTS)], person(rng), opened,
               _num_38_18(rng, 1 + rng.randrange(19)), limits)


_FX_SPECIALS: tuple[float, ...] = (
    float("nan"), float("inf"), float("-inf"), -0.0, 5e-324, 1.7976931348623157e308, 0.1 + 0.2,
    2.2250738585072014e-308, 1 / 3,
)


def gen_entries(scale: int, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "rc_ledger.entries")
    n_acc = 50 * scale
    year_start = {0: 2023, 1: 2024, 2: 2025}
    for i in range(1000 * scale):
        p = i % 4
        if p in year_start:
            start = datetime(year_start[p], 1, 1, tzinfo=UTC)
        else:  # the default partition: before and after the ranged years
            start = datetime(2019 if (i // 4) % 2 else 2030, 1, 1, tzinfo=UTC)
        booked = instant_between(rng, start, 365 * 86400)
        fx: float | None = _FX_SPECIALS[(i // 4) % len(_FX_SPECIALS)] if i % 10 == 0 else (
            None if i % 10 == 5 else rng.random() * 3)
        memo = awkward(i) if i % 2 else None
        a1, a2 = rng.randrange(1, n_acc + 1), rng.randrange(1, n_acc + 1)
        amt = _num_38_18(rng, 1 + rng.randrange(12))
        neg = amt[1:] if amt.startswith("-") else "-" + amt
        legs = None if i % 7 == 0 else f'{{"({a1},{amt})","({a2},{neg})"}}'
        months, days = rng.randrange(-30, 30), rng.randrange(-40, 40)
        secs, us = rng.randrange(86400 * 2), rng.randrange(10**6)
        took = f"{months} mons {days} days {secs} seconds {us} microseconds" if i % 6 else None
        yield (i + 1, booked, rng.randrange(1, n_acc + 1), amt, fx, memo, legs, took)


def gen_fx_rates(scale: int, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "rc_ledger.fx_rates")
    pairs = ("EUR/USD", "USD/JPY", "GBP/CHF", "BTC/EUR", "AUD/NZD")
    exacts = ("NaN", "Infinity", "-Infinity", "0.000", "-0.0", "1e-50",
              "123456789012345678901234567890.123456789012345678901234567890", "-1.5e300")
    observed_specials = ("infinity", "-infinity", "0044-03-15 12:00:00 BC", "2024-03-31 02:30:00",
                         "2000-02-29 23:59:59.999999")
    for i in range(40 * scale):
        rate = _FX_SPECIALS[i % len(_FX_SPECIALS)] if i % 2 == 0 else rng.random() * 200
        rate_r = _FX_SPECIALS[(i + 1) % 4] if i % 5 == 0 else rng.random()
        exact = exacts[i % len(exacts)] if i % 3 == 0 else f"{rng.randrange(10**30)}.{rng.randrange(10**25):025d}"
        observed: str | datetime = (observed_specials[(i // 4) % len(observed_specials)] if i % 4 == 0
                                    else instant_near_dst(rng, i).replace(tzinfo=None))
        yield (pairs[i % len(pairs)], rate, rate_r, exact, observed)


def gen_session_cache(scale: int, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "rc_ledger.session_cache")
    start = datetime(2025, 6, 1, tzinfo=UTC)
    for i in range(100 * scale):
        key = f"sess:{i:08x}:{rng.getrandbits(64):016x}"
        expires = None if i % 4 == 0 else instant_between(rng, start, 86400 * 30)
        yield (key, blob(rng, 1 + rng.randrange(64)), expires)


# --- rc_shop.venues: contrib extension types (citext, hstore; pg_trgm and btree_gist indexes) ---------

def _hstore_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def hstore_text(pairs: list[tuple[str, str | None]]) -> str:
    """An hstore literal: keys and values quoted, backslash and double quote escaped, NULL values bare."""
    return ", ".join(f"{_hstore_quote(k)}=>{'NULL' if v is None else _hstore_quote(v)}" for k, v in pairs)


_VENUE_NAMES = ("Grand Hall", "grand hall annex", "\u00c9cole du Caf\u00e9", "Room \"B\"", "Back\\Stage", "Loft")


def gen_venues(scale: int, seed: int) -> Iterator[Row]:
    """Bookable rooms: a case-insensitive handle (citext), attributes (hstore), a title searched by
    trigram, and time slots that never overlap within a room (btree_gist exclusion constraint)."""
    rng = rng_for(seed, "rc_shop.venues")
    start = datetime(2024, 10, 26, 22, 0, tzinfo=UTC)  # across the European DST change
    for i in range(30 * scale):
        room = i % 5 + 1
        slot = start + timedelta(hours=3 * (i // 5))
        booked = f"[{slot.isoformat()},{(slot + timedelta(hours=2, minutes=rng.randrange(60))).isoformat()})"
        name = _VENUE_NAMES[i % len(_VENUE_NAMES)]
        handle = (name.upper() if i % 2 else name.lower()).replace(" ", "-") + f"-{i}"
        attrs: str | None
        if i % 7 == 3:
            attrs = None
        elif i % 7 == 5:
            attrs = ""  # the empty hstore
        else:
            attrs = hstore_text([("seats", str(10 + rng.randrange(200))), ("k y", 'v"q\\'),
                                 ("wheelchair", None if i % 3 == 0 else ("yes", "no")[i % 2]),
                                 ("\u00e9tage", str(i % 4))])
        yield (i + 1, handle, f"{name} {awkward(i)[:20]}", attrs, room, booked)


# --- public ----------------------------------------------------------------------------------

def gen_strings(scale: int, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "public.rc_strings")
    fixed = ("", "a", "abcd", " x ", None, "\u00e9\u00e9")
    n = len(AWKWARD_TEXT)
    for i in range(60 * scale):
        body: str | None
        if i % 20 == 7:
            body = None
        elif i % 30 == 11:  # compressible, TOASTed
            body = ("repeat \\ 'me' \t" * 400) + awkward(i)
        elif i % 30 == 26:  # barely compressible, TOASTed out of line
            body = "".join(chr(0x4E00 + rng.randrange(0x5000)) for _ in range(3000))
        else:
            body = awkward(i)
        label = f"awkward #{i % n}"
        short = awkward(i + 1)[:12]
        parts = None if i % 9 == 0 else [awkward(i), awkward(i + 5), None, "", "{}", "NULL"]
        yield (i + 1, label, body, short, fixed[i % len(fixed)], parts)


_DATES = ("infinity", "-infinity", "2000-02-29", "0001-01-01", "1999-12-31", "4713-01-01 BC")
_TIMES = ("00:00:00", "24:00:00", "23:59:59.999999", "12:30:00.5")
_TIMETZ = ("12:00:00+05:30", "00:00:00-12", "23:59:59.999999+14", "06:45:00+05:45")
_INTERVALS = ("00:00:00", "-00:00:00.000001", "1 year 2 mons 3 days 04:05:06.789",
              "-1 days +02:00:00", "178000000 years", "1 mon -30 days")
_INETS = ("192.168.0.1", "::1", "2001:db8::1/64", "10.0.0.1/8", "::ffff:192.0.2.1", "0.0.0.0")
_CIDRS = ("10.0.0.0/8", "2001:db8::/32", "192.168.1.0/24", "0.0.0.0/0", "::/0")
_RANGES = ("[1,10)", "empty", "(,5]", "[3,)", "(,)", None)
_JSON_DOCS = ('{"b": 1,  "a": [1, 2], "a": "duplicate key kept"}', "[]", "null", '"\\u00e9 escaped"',
              '{"deep": {"deeper": {"deepest": [1.0, 1e2, -0]}}}', '  { "spaces" :  true }  ')
_GRIDS = ("{{1,2},{3,4}}", "{}", "[0:1]={7,8}", "{{NULL,1},{2,NULL}}", None)


def gen_types(scale: int, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "public.rc_types")
    ints2 = (-32768, 32767, 0, None)
    ints8 = (-(2**63), 2**63 - 1, 0, None)
    for i in range(30 * scale):
        u = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        i2 = ints2[(i // 2) % 4] if i % 2 == 0 else rng.randrange(-32768, 32768)
        i8 = ints8[(i // 2) % 4] if i % 2 == 0 else rng.randrange(-(2**63), 2**63)
        flag = (True, False, None)[i % 3]
        d = _DATES[(i // 2) % len(_DATES)] if i % 2 == 0 else (date(1970, 1, 1) + timedelta(days=rng.randrange(40000)))
        ts: str | datetime = ("infinity", "2024-03-31 02:30:00", "1999-12-31 23:59:59.999999")[i % 3] if i % 2 else \
            instant_near_dst(rng, i).replace(tzinfo=None)
        tstz: str | datetime = ("2024-10-27 02:30:00+02", "2024-10-27 02:30:00+01", "-infinity")[i % 3] if i % 2 \
            else instant_near_dst(rng, i)
        bits = format(rng.getrandbits(8), "08b")
        vbits = "" if i % 5 == 0 else format(rng.getrandbits(16), "b")
        mac = ":".join(f"{rng.getrandbits(8):02x}" for _ in range(6))
        yield (i + 1, u, i2, i8, flag, d, ts, tstz, _TIMES[i % len(_TIMES)], _TIMETZ[i % len(_TIMETZ)],
               _INTERVALS[i % len(_INTERVALS)], _INETS[i % len(_INETS)], _CIDRS[i % len(_CIDRS)], mac,
               bits, vbits, _RANGES[i % len(_RANGES)], _JSON_DOCS[i % len(_JSON_DOCS)],
               _GRIDS[i % len(_GRIDS)], ("a", "", "Z", "\\")[i % 4])


TABLES: tuple[TableSpec, ...] = (
    TableSpec("rc_shop.categories", ("id", "parent_id", "name", "path"), 40, gen_categories),
    TableSpec("rc_shop.customers",
              ("id", "email", "name", "nickname", "referred_by", "tags", "profile", "created_at"),
              200, gen_customers),
    TableSpec("rc_shop.products",
              ("sku", "category_id", "title", "price", "weight_kg", "dims_cm", "attributes", "photo",
               "manual", "discontinued"), 100, gen_products),
    TableSpec("rc_shop.orders",
              ("region", "order_no", "customer_id", "status", "placed_at", "ship_window", "total", "note"),
              500, gen_orders),
    TableSpec("rc_shop.order_lines", ("region", "order_no", "line_no", "sku", "qty", "unit_price"),
              1500, gen_order_lines),
    TableSpec("rc_shop.Gift Cards", ("Code", "Balance", "Issued To", "Valid"), 20, gen_gift_cards),
    TableSpec("rc_shop.venues", ("id", "handle", "title", "attrs", "room", "booked"), 30, gen_venues),
    TableSpec("rc_ledger.accounts", ("id", "code", "tenant", "holder", "opened", "balance", "limits"),
              50, gen_accounts),
    TableSpec("rc_ledger.entries",
              ("id", "booked_at", "account_id", "amount", "fx", "memo", "legs", "took"), 1000, gen_entries),
    TableSpec("rc_ledger.fx_rates", ("pair", "rate", "rate_r", "exact", "observed"), 40, gen_fx_rates),
    TableSpec("rc_ledger.session_cache", ("key", "value", "expires"), 100, gen_session_cache),
    TableSpec("public.rc_strings", ("id", "label", "body", "short", "fixed", "parts"), 60, gen_strings),
    TableSpec("public.rc_types",
              ("id", "u", "i2", "i8", "flag", "d", "ts", "tstz", "t", "ttz", "span", "addr", "net", "mac",
               "bits", "vbits", "nums", "doc", "grid", "ch"), 30, gen_types),
)


def large_objects(scale: int, seed: int) -> Iterator[tuple[int, bytes]]:
    """(oid, content) of the dataset's large objects."""
    rng = rng_for(seed, "large_objects")
    for j in range(LO_PER_SCALE * scale):
        size = (0, 1, 1000, 70_000, 5_000)[j % 5]  # empty, tiny, one page, several 2 kB chunks
        yield (LO_BASE_OID + j, blob(rng, size) if size else b"")


# The changes made after the load (audit rows for UPDATE and DELETE, cascades, SET NULL).
def updated_orders(scale: int) -> list[tuple[int, int]]:
    return [order_key(i) for i in range(500 * scale) if i % 20 == 3]


def deleted_orders(scale: int) -> list[tuple[int, int]]:
    return [order_key(i) for i in range(500 * scale) if i % 50 == 0]


def deleted_category_roots(scale: int) -> list[int]:
    """Root categories whose subtree (8 nodes) is deleted by the cascade."""
    return [i + 1 for i in range(40 * scale) if i % 40 == 8]


def invoice_numbers_drawn(scale: int) -> int:
    return 3 * scale
