"""Rollups: what each drop-off and order adds to the report counters, defined once.

Every rollup table (exchange/models.py, migration 0009) is a sum over raw rows: a row of
`dropoffs` or `orders` adds a contribution (a key and counters, SQL expressions of the row),
so a write changes a rollup by the new row's contribution less the old row's. From these
definitions this module renders

- the triggers that keep the rollups in the transaction of every write, whichever code path
  writes: on PostgreSQL a PL/pgSQL function per raw table, run by constraint triggers
  deferred to the commit, so that a write takes its department's counter rows last (after
  the department's ledger head, which every writer takes first) and two writers never wait
  on counter rows in opposite orders; on SQLite (one writer at a time) plain triggers;
- the recomputation from the raw rows: `check` compares it with the tables (`exchange
  reports check`), `rebuild_statements` writes it into them (the migration's backfill, the
  benchmark's bulk load), and the reports read it for the part of a day that a period
  covers (a campaign that starts or ends within a day).

Each upsert adds the old and the new contribution of a row in one statement (grouped by
key), so an update that keeps the key touches one counter row once; an update that changes
nothing a rollup counts is filtered out before the trigger runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.models import UTCDateTime
from exchange.models import (
    Dropoff,
    Order,
    ReportDay,
    ReportDropoffDay,
    ReportFirstDropoff,
    ReportParticipant,
    ReportProductDay,
    ReportStationDay,
)

DROPOFF_STATUSES = ("pending", "confirmed", "rejected")
ORDER_STATUSES = ("reserved", "fulfilled", "cancelled", "expired")
SPANS = ("day", "month", "year")


@dataclass(frozen=True)
class Dialect:
    """The few SQL spellings that differ between PostgreSQL and SQLite."""

    name: str

    @property
    def postgresql(self) -> bool:
        return self.name == "postgresql"

    def day_text(self, column: str) -> str:
        """A YYYY-MM-DD text column (dropoffs.local_day) as a day."""
        return f"CAST({column} AS date)" if self.postgresql else column

    def day_of(self, column: str) -> str:
        """The Asia/Shanghai day of a UTC timestamp column."""
        if self.postgresql:
            return f"CAST(({column} AT TIME ZONE 'Asia/Shanghai') AS date)"
        # China has kept UTC+8 all year since 1991: a fixed offset is exact for our dates.
        return f"date({column}, '+8 hours')"

    def start_of(self, span: str, day: str) -> str:
        if span == "day":
            return day
        if self.postgresql:
            return f"CAST(date_trunc('{span}', {day}) AS date)"
        return f"date({day}, 'start of {span}')"

    def merge(self, how: str, old: str, new: str) -> str:
        if how == "sum":
            return f"{old} + {new}"
        function = {"max": "greatest", "min": "least"}[how]
        if not self.postgresql:
            function = how  # SQLite's two-argument max() and min() are scalar
        return f"{function}({old}, {new})"


Expressions = dict[str, str]


@dataclass(frozen=True)
class Source:
    """What one row `r` of a raw table adds to a rollup, when `when(r)` holds: the rollup's
    key columns and some of its value columns, as SQL expressions of `r`."""

    table: str
    time: str  # the row's timestamp that a part of a day is cut by
    keys: Callable[[str, Dialect], Expressions]
    values: Callable[[str], Expressions]
    when: Callable[[str], str] = lambda r: "1 = 1"


@dataclass(frozen=True)
class Rollup:
    table: sa.Table
    keys: tuple[str, ...]
    values: dict[str, str]  # column -> how it merges: sum (signed), max or min
    sources: tuple[Source, ...]

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def counters(self) -> tuple[str, ...]:
        return tuple(c for c, how in self.values.items() if how == "sum")


def _case(condition: str, value: str) -> str:
    return f"CASE WHEN {condition} THEN {value} ELSE 0 END"


def _quantity(r: str) -> str:
    return f"COALESCE({r}.confirmed_quantity, {r}.quantity)"


def _by_status(r: str) -> Expressions:
    values = {}
    for status in DROPOFF_STATUSES:
        holds = f"{r}.status = '{status}'"
        values[f"{status}_count"] = _case(holds, "1")
        values[f"{status}_quantity"] = _case(holds, _quantity(r))
        values[f"{status}_points"] = _case(holds, f"{r}.points")
    return values


def _station(r: str) -> Expressions:
    confirmed = f"{r}.status = 'confirmed'"
    return {
        "dropoffs": "1",
        "confirmed": _case(confirmed, "1"),
        "paper_grams": _case(f"{confirmed} AND {r}.unit = 'g'", _quantity(r)),
        "items": _case(f"{confirmed} AND {r}.unit <> 'g'", _quantity(r)),
        "points": _case(confirmed, f"{r}.points"),
    }


def _orders_placed(r: str) -> Expressions:
    values = {}
    for status in ORDER_STATUSES:
        values[f"orders_{status}"] = _case(f"{r}.status = '{status}'", "1")
        values[f"orders_{status}_points"] = _case(f"{r}.status = '{status}'", f"{r}.points")
    return values


def _logged_day(r: str, d: Dialect) -> str:
    return d.day_text(f"{r}.local_day")


def _participant(span: str, table: str, counter: str, when: Callable[[str], str]) -> Source:
    def keys(r: str, d: Dialect) -> Expressions:
        day = _logged_day(r, d) if table == "dropoffs" else d.day_of(f"{r}.created_at")
        return {
            "department_id": f"{r}.department_id",
            "span": f"'{span}'",
            "start_day": d.start_of(span, day),
            "user_id": f"{r}.user_id",
        }

    return Source(table, "created_at", keys, lambda r: {counter: "1"}, when)


def _counters(model: Any, *keys: str) -> dict[str, str]:
    return {c.name: "sum" for c in model.__table__.columns if c.name not in keys}


_DAY_KEYS = ("department_id", "day")
DROPOFF_DAYS = Rollup(
    ReportDropoffDay.__table__,
    ("department_id", "category", "campaign_id", "day"),
    _counters(ReportDropoffDay, *_DAY_KEYS, "category", "campaign_id"),
    (
        Source(
            "dropoffs",
            "created_at",
            lambda r, d: {
                "department_id": f"{r}.department_id",
                "day": _logged_day(r, d),
                "category": f"{r}.category",
                "campaign_id": f"{r}.campaign_id",
            },
            _by_status,
        ),
    ),
)
STATION_DAYS = Rollup(
    ReportStationDay.__table__,
    ("department_id", "station_id", "day"),
    _counters(ReportStationDay, *_DAY_KEYS, "station_id"),
    (
        Source(
            "dropoffs",
            "created_at",
            lambda r, d: {
                "department_id": f"{r}.department_id",
                "day": _logged_day(r, d),
                "station_id": f"{r}.station_id",
            },
            _station,
        ),
    ),
)


def _day_of(column: str) -> Callable[[str, Dialect], Expressions]:
    return lambda r, d: {"department_id": f"{r}.department_id", "day": d.day_of(f"{r}.{column}")}


DAYS = Rollup(
    ReportDay.__table__,
    _DAY_KEYS,
    _counters(ReportDay, *_DAY_KEYS),
    (
        # Drop-offs by the day they were logged: the day series of the reports.
        Source(
            "dropoffs",
            "created_at",
            lambda r, d: {"department_id": f"{r}.department_id", "day": _logged_day(r, d)},
            lambda r: {
                "dropoffs": "1",
                "dropoffs_confirmed": _case(f"{r}.status = 'confirmed'", "1"),
                "paper_grams": _station(r)["paper_grams"],
                "items": _station(r)["items"],
            },
        ),
        # Credits posted (confirmed) or voided (rejected), on the day of the decision.
        Source(
            "dropoffs",
            "decided_at",
            _day_of("decided_at"),
            lambda r: {
                "points_issued": _case(f"{r}.status = 'confirmed'", f"{r}.points"),
                "points_rejected": _case(f"{r}.status = 'rejected'", f"{r}.points"),
            },
            lambda r: f"{r}.decided_at IS NOT NULL",
        ),
        # Orders by the day they were placed, counted by their status now.
        Source("orders", "created_at", _day_of("created_at"), _orders_placed),
        # Holds posted (picked up) or voided (cancelled, expired), on the day it happened.
        Source(
            "orders",
            "resolved_at",
            _day_of("resolved_at"),
            lambda r: {
                "points_spent": _case(f"{r}.status = 'fulfilled'", f"{r}.points"),
                "points_released": _case(f"{r}.status IN ('cancelled', 'expired')", f"{r}.points"),
            },
            lambda r: f"{r}.resolved_at IS NOT NULL",
        ),
    ),
)
PRODUCT_DAYS = Rollup(
    ReportProductDay.__table__,
    ("department_id", "product_id", "day"),
    {
        **_counters(ReportProductDay, *_DAY_KEYS, "product_id", "product_name", "product_unit"),
        # Labels, not counters: the orders' snapshots of the product, the greatest seen.
        "product_name": "max",
        "product_unit": "max",
    },
    (
        Source(
            "orders",
            "resolved_at",
            lambda r, d: {
                "department_id": f"{r}.department_id",
                "day": d.day_of(f"{r}.resolved_at"),
                "product_id": f"{r}.product_id",
            },
            lambda r: {
                "picked_up": "1",
                "quantity": f"{r}.quantity",
                "points": f"{r}.points",
                "value_fen": f"{r}.value_fen",
                "product_name": f"{r}.product_name",
                "product_unit": f"{r}.product_unit",
            },
            lambda r: f"{r}.status = 'fulfilled' AND {r}.resolved_at IS NOT NULL",
        ),
    ),
)
PARTICIPANTS = Rollup(
    ReportParticipant.__table__,
    ("department_id", "span", "start_day", "user_id"),
    {"dropoffs": "sum", "orders": "sum"},
    tuple(
        _participant(span, "dropoffs", "dropoffs", lambda r: f"{r}.status = 'confirmed'")
        for span in SPANS
    )
    + tuple(_participant(span, "orders", "orders", lambda r: "1 = 1") for span in SPANS),
)
FIRST_DROPOFFS = Rollup(
    ReportFirstDropoff.__table__,
    ("department_id", "user_id"),
    {"first_day": "min"},
    (
        Source(
            "dropoffs",
            "created_at",
            lambda r, d: {"department_id": f"{r}.department_id", "user_id": f"{r}.user_id"},
            lambda r: {"first_day": "{day}"},
            lambda r: f"{r}.status = 'confirmed'",
        ),
    ),
)
ROLLUPS = (DROPOFF_DAYS, STATION_DAYS, DAYS, PRODUCT_DAYS, PARTICIPANTS, FIRST_DROPOFFS)

# The columns a rollup reads: an update that changes none of them changes no rollup.
WATCHED = {
    "dropoffs": (
        "department_id", "user_id", "station_id", "campaign_id", "category", "unit",
        "quantity", "confirmed_quantity", "points", "status", "local_day", "created_at",
        "decided_at",
    ),
    "orders": (
        "department_id", "user_id", "product_id", "product_name", "product_unit",
        "quantity", "points", "value_fen", "status", "created_at", "resolved_at",
    ),
}  # fmt: skip
RAW = {"dropoffs": Dropoff.__table__, "orders": Order.__table__}


# --- rendering --------------------------------------------------------------------------------


def _values(rollup: Rollup, source: Source, r: str, d: Dialect) -> Expressions:
    found = source.values(r)
    if "{day}" in found.get("first_day", ""):  # the first confirmed drop-off's day
        found = {"first_day": _logged_day(r, d)}
    return found


def _select(rollup: Rollup, source: Source, r: str, d: Dialect, sign: int) -> str:
    """The contribution of row `r` as one SELECT of the rollup's columns (no FROM)."""
    keys, values = source.keys(r, d), _values(rollup, source, r, d)
    columns = [f"{keys[k]} AS {k}" for k in rollup.keys]
    for column, how in rollup.values.items():
        value = values.get(column, "0" if how == "sum" else "NULL")
        if how == "sum" and sign != 1:
            value = f"{sign} * ({value})"
        columns.append(f"{value} AS {column}")
    return f"SELECT {', '.join(columns)}"


def _grouped(rollup: Rollup, rows: str) -> str:
    keys = ", ".join(rollup.keys)
    aggregates = ", ".join(f"{how}({column}) AS {column}" for column, how in rollup.values.items())
    return f"SELECT {keys}, {aggregates} FROM ({rows}) AS c GROUP BY {keys}"


def _upsert(rollup: Rollup, selected: str, d: Dialect) -> str:
    # SQLite takes no alias for the target inside a trigger: its bare columns are the row's.
    target = f"{rollup.name} AS t" if d.postgresql else rollup.name
    prefix = "t." if d.postgresql else ""
    columns = ", ".join((*rollup.keys, *rollup.values))
    updates = ", ".join(
        f"{c} = {d.merge(how, prefix + c, f'excluded.{c}')}" for c, how in rollup.values.items()
    )
    return (
        f"INSERT INTO {target} ({columns}) {selected} "
        f"ON CONFLICT ({', '.join(rollup.keys)}) DO UPDATE SET {updates}"
    )


def trigger_statement(
    rollup: Rollup, table: str, rows: Sequence[tuple[str, int]], d: Dialect
) -> str:
    """One upsert adding the contributions of the given rows (OLD -1, NEW +1) of `table`.
    A minimum or maximum cannot take a contribution back: a rollup of only those adds the new
    row's (see `_repair_first_dropoff` for taking one back)."""
    if not rollup.counters:
        rows = [(r, sign) for r, sign in rows if sign > 0]
    parts = [
        f"{_select(rollup, s, r, d, sign)} WHERE {r}.department_id IS NOT NULL AND ({s.when(r)})"
        for s in rollup.sources
        if s.table == table
        for r, sign in rows
    ]
    if not parts:
        return None
    grouped = _grouped(rollup, " UNION ALL ".join(parts))
    if rollup.counters:  # a change that nets to nothing writes nothing
        grouped += " HAVING " + " OR ".join(f"sum({c}) <> 0" for c in rollup.counters)
    elif d.name == "sqlite":
        grouped += " HAVING 1 = 1"  # SQLite: an upsert's SELECT needs a WHERE or HAVING
    return _upsert(rollup, grouped, d)


def _repair_first_dropoff(d: Dialect, old: str = "OLD") -> list[str]:
    """A confirmed drop-off that stops counting may have been its employee's first: the
    minimum cannot be taken back, so it is recomputed from that employee's drop-offs."""
    condition = f"{old}.status = 'confirmed'"
    recompute = (
        f"SELECT department_id, user_id, min({_logged_day('r', d)}) FROM dropoffs AS r "
        f"WHERE r.department_id = {old}.department_id AND r.user_id = {old}.user_id "
        f"AND r.status = 'confirmed' AND {condition} GROUP BY department_id, user_id"
    )
    return [
        f"DELETE FROM report_first_dropoffs WHERE department_id = {old}.department_id "
        f"AND user_id = {old}.user_id AND {condition}",
        f"INSERT INTO report_first_dropoffs (department_id, user_id, first_day) {recompute}",
    ]


def _contributes(rollup: Rollup, table: str, r: str) -> str:
    """Whether row `r` (OLD or NEW, NULL when there is none) adds anything to the rollup."""
    whens = " OR ".join(f"({s.when(r)})" for s in rollup.sources if s.table == table)
    return f"({r}.department_id IS NOT NULL AND ({whens}))"


def _watched(table: str, d: Dialect) -> str:
    differs = "IS DISTINCT FROM" if d.postgresql else "IS NOT"
    return " OR ".join(f"OLD.{c} {differs} NEW.{c}" for c in WATCHED[table])


def _statements(
    rollups: Sequence[Rollup], table: str, rows: Sequence[tuple[str, int]], d: Dialect
) -> list[str]:
    found = (trigger_statement(r, table, rows, d) for r in rollups)
    return [statement for statement in found if statement]


def install_statements(dialect: str) -> list[str]:
    """The triggers (and on PostgreSQL their functions) that keep every rollup."""
    d = Dialect(dialect)
    statements = []
    for table in RAW:
        rollups = [r for r in ROLLUPS if any(s.table == table for s in r.sources)]
        repair = _repair_first_dropoff(d) if table == "dropoffs" else []
        function = f"report_rollup_{table}"
        if d.postgresql:
            # Each upsert only when the old or the new row counts in that rollup at all.
            body = [
                f"IF {_contributes(r, table, 'OLD')} OR {_contributes(r, table, 'NEW')} THEN "
                f"{statement}; END IF"
                for r in rollups
                if (statement := trigger_statement(r, table, [("OLD", -1), ("NEW", 1)], d))
            ]
            if repair:
                body.append(
                    f"IF TG_OP <> 'INSERT' AND OLD.status = 'confirmed' THEN "
                    f"{'; '.join(repair)}; END IF"
                )
            statements += [
                f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                "BEGIN\n  " + ";\n  ".join(body) + ";\n  RETURN NULL;\nEND\n$$",
                f"DROP TRIGGER IF EXISTS {function}_write ON {table}",
                f"DROP TRIGGER IF EXISTS {function}_change ON {table}",
                f"CREATE CONSTRAINT TRIGGER {function}_write AFTER INSERT OR DELETE ON {table} "
                f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {function}()",
                f"CREATE CONSTRAINT TRIGGER {function}_change AFTER UPDATE ON {table} "
                f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN ({_watched(table, d)}) "
                f"EXECUTE FUNCTION {function}()",
            ]
            continue
        for event, rows, when in (
            ("INSERT", [("NEW", 1)], ""),
            ("UPDATE", [("OLD", -1), ("NEW", 1)], f" WHEN {_watched(table, d)}"),
            ("DELETE", [("OLD", -1)], ""),
        ):
            body = _statements(rollups, table, rows, d)
            body += repair if event != "INSERT" else []
            name = f"{function}_{event.lower()}"
            statements += [
                f"DROP TRIGGER IF EXISTS {name}",
                f"CREATE TRIGGER {name} AFTER {event} ON {table}{when} BEGIN\n  "
                + ";\n  ".join(body)
                + ";\nEND",
            ]
    return statements


def uninstall_statements(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [f"DROP FUNCTION IF EXISTS report_rollup_{table}() CASCADE" for table in RAW]
    return [
        f"DROP TRIGGER IF EXISTS report_rollup_{table}_{event}"
        for table in RAW
        for event in ("insert", "update", "delete")
    ]


# --- recomputing from the raw rows -------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A part of the time line (UTC, [start, end)) whose raw rows are recomputed."""

    start: datetime
    end: datetime


@dataclass
class _Params:
    values: dict[str, Any] = field(default_factory=dict)

    def add(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f":{name}"


def recompute_sql(
    rollup: Rollup,
    dialect: str,
    *,
    department_id: str | None = None,
    windows: Sequence[Window] = (),
    params: _Params | None = None,
) -> tuple[str, dict[str, Any]]:
    """The rollup computed from the raw rows: all of them, or those of one department and
    whose timestamp (each source its own) falls in one of `windows`."""
    d, params = Dialect(dialect), params or _Params()
    parts = []
    for source in rollup.sources:
        conditions = [source.when("r")]
        if department_id is not None:
            conditions.append(f"r.department_id = {params.add(department_id)}")
        if windows:
            at = f"r.{source.time}"
            cuts = [
                f"({at} >= {params.add(w.start)} AND {at} < {params.add(w.end)})" for w in windows
            ]
            conditions.append(f"({' OR '.join(cuts)})")
        parts.append(
            f"{_select(rollup, source, 'r', d, 1)} FROM {source.table} AS r "
            f"WHERE {' AND '.join(conditions)}"
        )
    return _grouped(rollup, " UNION ALL ".join(parts)), params.values


def recomputed(
    rollup: Rollup,
    dialect: str,
    *,
    department_id: str | None = None,
    windows: Sequence[Window] = (),
) -> sa.Subquery:
    """`recompute_sql` as a subquery with the rollup table's columns, for Core queries."""
    sql, values = recompute_sql(rollup, dialect, department_id=department_id, windows=windows)
    columns = [sa.column(c.name, c.type) for c in rollup.table.columns]
    # Typed, so that SQLite compares times in the text form it stores them in.
    binds = [
        sa.bindparam(name, value, type_=UTCDateTime() if isinstance(value, datetime) else None)
        for name, value in values.items()
    ]
    return sa.text(sql).bindparams(*binds).columns(*columns).subquery()


def rebuild_statements(dialect: str) -> list[str]:
    """Empty every rollup and fill it again from the raw rows."""
    statements = []
    for rollup in ROLLUPS:
        sql, _ = recompute_sql(rollup, dialect)
        columns = ", ".join((*rollup.keys, *rollup.values))
        statements += [f"DELETE FROM {rollup.name}", f"INSERT INTO {rollup.name} ({columns}) {sql}"]
    return statements


async def rebuild(conn: AsyncConnection) -> None:
    for statement in rebuild_statements(conn.dialect.name):
        await conn.execute(sa.text(statement))


@dataclass(frozen=True)
class Difference:
    rollup: str
    key: tuple[Any, ...]
    stored: dict[str, Any] | None  # None: no row where the raw rows make one
    recomputed: dict[str, Any] | None  # None: a row the raw rows do not make

    def __str__(self) -> str:
        return f"{self.rollup} {self.key}: stored {self.stored}, recomputed {self.recomputed}"


def _significant(rollup: Rollup, rows: Sequence[Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Rows by key, without those whose counters are all zero (a row that once counted
    something and no longer does is the same as no row)."""
    found = {}
    for row in rows:
        mapping = row._mapping
        values = {c: mapping[c] for c in rollup.values}
        if rollup.counters and not any(values[c] for c in rollup.counters):
            continue
        found[tuple(mapping[k] for k in rollup.keys)] = values
    return found


async def check(conn: AsyncConnection) -> list[Difference]:
    """Every difference between the stored rollups and their recomputation from raw rows."""
    differences = []
    for rollup in ROLLUPS:
        stored = _significant(rollup, (await conn.execute(sa.select(rollup.table))).all())
        again = await conn.execute(sa.select(recomputed(rollup, conn.dialect.name)))
        fresh = _significant(rollup, again.all())
        for key in sorted(set(stored) | set(fresh), key=repr):
            if stored.get(key) != fresh.get(key):
                differences.append(Difference(rollup.name, key, stored.get(key), fresh.get(key)))
    return differences
