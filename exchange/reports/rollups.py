"""Rollups: what each drop-off and order adds to the report counters, defined once.

Every rollup table (exchange/models.py, migrations 0009 and 0014) is a sum over raw rows: a
row of `dropoffs`, `orders` or `points_expiries` adds a contribution (a key and counters, SQL
expressions of the row), so a write changes a rollup by the new row's contribution less the
old row's. (Participants' month and year rows are the exception: they count the days, and
the months, with activity; see `Rollup.spans`.) From these definitions this module renders

- the triggers that keep the rollups in the transaction of every write, whichever code path
  writes: on PostgreSQL a PL/pgSQL function per raw table, run by constraint triggers
  deferred to the commit, so that a write takes its department's counter rows last (after
  the department's ledger head, which every writer takes first) and two writers never wait
  on counter rows in opposite orders; on SQLite (one writer at a time) plain triggers;
- the recomputation from the raw rows: `check` compares it with the tables (`exchange
  reports check`), `rebuild_statements` writes it into them (the migration's backfill, the
  benchmark's bulk load), and the reports read it for the part of a day that a period
  covers (a campaign that starts or ends within a day).

A trigger writes each counter row it changes with one plain `INSERT … VALUES … ON CONFLICT
DO UPDATE`: the parts of a write that land on one key (the old and new row of an update that
keeps its key; a drop-off logged and credited the same day) are summed first, and an update
that nets to nothing writes nothing; an update that changes no column a rollup reads is
filtered out before the trigger runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.models import UTCDateTime
from exchange.models import (
    REPORT_DROPOFF_MONTHS,
    REPORT_MONTHS,
    REPORT_PRODUCT_MONTHS,
    REPORT_STATION_MONTHS,
    Dropoff,
    Order,
    PointsExpiry,
    ReportDay,
    ReportDropoffDay,
    ReportFirstDropoff,
    ReportParticipant,
    ReportProductDay,
    ReportStationDay,
)

DROPOFF_STATUSES = ("pending", "confirmed", "rejected")
ORDER_STATUSES = ("reserved", "fulfilled", "cancelled", "expired")
SPANS = ("day", "month", "year")  # participants' rows, each span counting the one before


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
    # Beside the day rows (`span` 'day'), rows per month and per year (keyed by their first
    # day) that count the days of the month, and the months of the year, in which a counter
    # was above zero: they change only when a row below turns non-zero or back to zero.
    spans: tuple[str, ...] = ()
    # The same rows folded per month by the sweep (exchange/reports/months.py), if any.
    months: sa.Table | None = None

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
    months=REPORT_DROPOFF_MONTHS,
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
    months=REPORT_STATION_MONTHS,
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
        # A campaign's points expired for an employee (exchange/expiry.py), on that day.
        Source(
            "points_expiries",
            "expired_at",
            _day_of("expired_at"),
            lambda r: {"points_expired": f"{r}.expired_points"},
            lambda r: f"{r}.expired_at IS NOT NULL AND {r}.expired_points > 0",
        ),
    ),
    months=REPORT_MONTHS,
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
    months=REPORT_PRODUCT_MONTHS,
)
PARTICIPANTS = Rollup(
    ReportParticipant.__table__,
    ("department_id", "span", "start_day", "user_id"),
    {"dropoffs": "sum", "orders": "sum"},
    (
        _participant("day", "dropoffs", "dropoffs", lambda r: f"{r}.status = 'confirmed'"),
        _participant("day", "orders", "orders", lambda r: "1 = 1"),
    ),
    spans=SPANS[1:],
)
# Kept by the participants' cascade (`_first_day_hooks`): a day of an employee's turns to
# having a confirmed drop-off, or back.
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
FOLDED = tuple(r for r in ROLLUPS if r.months is not None)  # the ones with month rows

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
    "points_expiries": ("department_id", "expired_at", "expired_points"),
}  # fmt: skip
RAW = {
    "dropoffs": Dropoff.__table__,
    "orders": Order.__table__,
    "points_expiries": PointsExpiry.__table__,
}


# --- the triggers ------------------------------------------------------------------------------


def _values(rollup: Rollup, source: Source, r: str, d: Dialect) -> Expressions:
    found = source.values(r)
    if "{day}" in found.get("first_day", ""):  # the first confirmed drop-off's day
        found = {"first_day": _logged_day(r, d)}
    return found


_LITERAL = re.compile(r"'[^']*'")


@dataclass(frozen=True)
class _Part:
    """What one image of a written row (OLD taken back, NEW added) gives a rollup through one
    of its sources: a key and values, when the source's condition holds."""

    rollup: Rollup
    source: Source
    row: str
    sign: int
    d: Dialect

    @property
    def keys(self) -> Expressions:
        return self.source.keys(self.row, self.d)

    @property
    def active(self) -> str:
        return f"({self.source.when(self.row)})"

    def value(self, column: str) -> str | None:
        found = _values(self.rollup, self.source, self.row, self.d).get(column)
        if found is not None and self.rollup.values[column] == "sum" and self.sign < 0:
            return f"-({found})"
        return found

    def may_share_key(self, other: _Part) -> bool:
        """False when a key column is a different constant in each (a participant's day row
        and month row never meet)."""
        return not any(
            _LITERAL.fullmatch(mine) and _LITERAL.fullmatch(theirs) and mine != theirs
            for mine, theirs in ((self.keys[k], other.keys[k]) for k in self.rollup.keys)
        )

    def meets(self, other: _Part) -> str:
        """SQL: this part counts and has the other's key."""
        same = "IS NOT DISTINCT FROM" if self.d.postgresql else "IS"
        differ = [
            f"{self.keys[k]} {same} {other.keys[k]}"
            for k in self.rollup.keys
            if self.keys[k] != other.keys[k]
        ]
        return " AND ".join([self.active, *differ])


@dataclass
class _Locals:
    """The variables of a PL/pgSQL trigger function: an expression that an event's upserts
    use more than once (whether two parts meet, a net change) is computed once, at the
    start of the event's branch."""

    declared: dict[str, str] = field(default_factory=dict)  # name -> type
    assignments: list[str] = field(default_factory=list)  # of the branch being rendered
    names: dict[str, str] = field(default_factory=dict)  # expression -> name, in the branch

    def of(self, expression: str, sql_type: str) -> str:
        if expression not in self.names:
            name = f"v{len(self.declared)}"
            self.declared[name] = sql_type
            self.names[expression] = name
            self.assignments.append(f"{name} := {expression}")
        return self.names[expression]

    def named(self, name: str, sql_type: str) -> str:
        self.declared[name] = sql_type
        return name

    def branch(self) -> list[str]:
        """The assignments of the branch just rendered; the next starts afresh."""
        assignments, self.assignments, self.names = self.assignments, [], {}
        return assignments


def _upserts(
    rollup: Rollup,
    table: str,
    rows: Sequence[tuple[str, int]],
    d: Dialect,
    local: _Locals | None = None,
) -> list[str]:
    """Plain upserts (one row of VALUES each) adding the contributions of the row images
    `rows` (OLD -1, NEW +1) of `table` to the rollup. Parts that land on one key are summed
    into the first of them that counts, so a key is written once; an update that nets to
    nothing writes nothing. A minimum or maximum cannot take a contribution back: a rollup of
    only those adds the new row's (see `_repair_first_dropoff` for taking one back). With
    `local` (PostgreSQL), what is used twice is computed once into a variable."""
    parts = [
        _Part(rollup, source, row, sign, d)
        for row, sign in rows
        for source in rollup.sources
        if source.table == table and (rollup.counters or sign > 0)
    ]

    def once(expression: str, sql_type: str) -> str:
        return local.of(expression, sql_type) if local else f"({expression})"

    def meets(p: _Part, part: _Part) -> str:
        return once(p.meets(part), "boolean")

    found: list[tuple[list[_Part], Expressions, str]] = []  # (parts, values, guard)
    for i, part in enumerate(parts):
        earlier = [p for p in parts[:i] if p.may_share_key(part)]
        later = [p for p in parts[i + 1 :] if p.may_share_key(part)]
        guard = [part.active, *(f"NOT {meets(p, part)}" for p in earlier)]
        values: dict[str, str] = {}
        for column, how in rollup.values.items():
            mine = part.value(column)
            theirs = [(p, v) for p in later if (v := p.value(column)) is not None]
            if how == "sum":
                terms = [mine] if mine is not None else []
                terms += [f"CASE WHEN {meets(p, part)} THEN {v} ELSE 0 END" for p, v in theirs]
                if terms:
                    values[column] = " + ".join(terms)
            elif mine is not None:
                for p, v in theirs:
                    mine = d.merge(
                        how, mine, f"COALESCE(CASE WHEN {meets(p, part)} THEN {v} END, {mine})"
                    )
                values[column] = mine
        if rollup.counters and {part.sign, *(p.sign for p in later)} == {-1, 1}:
            for c in rollup.counters:
                if c in values:
                    values[c] = once(values[c], "bigint")
            nets = [f"{values[c]} <> 0" for c in rollup.counters if c in values]
            guard.append(f"({' OR '.join(nets)})")
        condition = " AND ".join(guard)
        last = found[-1] if found else None
        if (
            d.postgresql  # rows that never share a key, of the same values and condition
            and last is not None
            and (last[1], last[2]) == (values, condition)
            and not any(p.may_share_key(part) for p in last[0])
        ):
            last[0].append(part)
        else:
            found.append(([part], values, condition))
    if not rollup.spans:
        return [_upsert(rollup, group, values, guard, d) for group, values, guard in found]
    statements = []
    for (part,), values, guard in found:  # a cascade's parts are never grouped: one key
        then = _cascade(rollup, part, values, guard, d, local)
        if d.postgresql:
            statements.append(_upsert(rollup, [part], values, guard, d, then[0]))
        else:
            statements += [_upsert(rollup, [part], values, guard, d), *then]
    return statements


def _cascade(
    rollup: Rollup,
    part: _Part,
    values: Expressions,
    guard: str,
    d: Dialect,
    local: _Locals | None,
) -> list[str]:
    """After a day row's upsert, its month's and year's rows, each changed only when the row
    below it turned non-zero or back to zero; and for drop-offs, the first day's hooks. On
    PostgreSQL one tail of the day's upsert (RETURNING … INTO, then PL/pgSQL); on SQLite
    statements that read the rows just written."""
    counters = rollup.counters
    day = part.keys["start_day"]

    def key(span: str) -> Expressions:
        start = day if span == "day" else d.start_of(span, day)
        return {**part.keys, "span": f"'{span}'", "start_day": start}

    if d.postgresql:
        assert local is not None
        now = [local.named(f"now_{c}", "bigint") for c in counters]
        up = [local.named(f"up_{c}", "bigint") for c in counters]
        returning = f" RETURNING {', '.join(f't.{c}' for c in counters)} INTO {', '.join(now)}"

        def turned(delta: Sequence[str]) -> str:
            return "; ".join(
                f"{u} := ({n} > 0)::int - ({n} - ({x}) > 0)::int"
                for u, n, x in zip(up, now, delta, strict=True)
            )

        tail = f"; {turned([values.get(c, '0') for c in counters])}"
        if part.source.table == "dropoffs":
            tail += "; " + _first_day_hooks(part, d, up[counters.index("dropoffs")])
        closing = ""
        for span in rollup.spans:
            changed = " OR ".join(f"{u} <> 0" for u in up)
            upward = dict(zip(counters, up, strict=True))
            insert = _upsert(rollup, [key(span)], upward, "TRUE", d)
            insert = insert.removeprefix("IF TRUE THEN ").removesuffix("; END IF")
            tail += f"; IF {changed} THEN {insert}{returning}; {turned(up)}"
            closing += "; END IF"
        return [returning + tail + closing]

    def stored(c: str, span: str) -> str:
        k = key(span)
        return (
            f"(SELECT {c} FROM {rollup.name} WHERE department_id = {k['department_id']} AND "
            f"span = {k['span']} AND start_day = {k['start_day']} AND user_id = {k['user_id']})"
        )

    # How a counter of the row of `span` turned, given the change of the row below it.
    delta = {c: f"({values.get(c, '0')})" for c in counters}
    statements = []
    for below, span in zip(("day", *rollup.spans), rollup.spans, strict=False):
        turned = {
            c: f"(({stored(c, below)} > 0) - ({stored(c, below)} - {delta[c]} > 0))"
            for c in counters
        }
        if below == "day" and part.source.table == "dropoffs":
            statements += _first_day_hooks(part, d, turned["dropoffs"], guard)
        changed = " OR ".join(f"{t} <> 0" for t in turned.values())
        statements.append(_upsert(rollup, [key(span)], turned, f"{guard} AND ({changed})", d))
        delta = turned
    return statements


def _upsert(
    rollup: Rollup,
    parts: Sequence[_Part | Expressions],
    values: Expressions,
    guard: str,
    d: Dialect,
    then: str = "",
) -> str:
    """The upsert of the parts' rows (their keys, the same values): on PostgreSQL `IF guard
    THEN INSERT … VALUES … [then] END IF` (`then` may start with the RETURNING clause), on
    SQLite (no IF in a trigger; one part) `INSERT … SELECT … WHERE guard`."""
    rows = []
    for part in parts:
        keys = part.keys if isinstance(part, _Part) else part
        given = [keys[k] for k in rollup.keys]
        given += [
            values.get(c, "0" if how == "sum" else "NULL") for c, how in rollup.values.items()
        ]
        rows.append(", ".join(given))
    # SQLite takes no alias for the target inside a trigger: its bare columns are the row's.
    target = f"{rollup.name} AS t" if d.postgresql else rollup.name
    prefix = "t." if d.postgresql else ""
    updates = ", ".join(
        f"{c} = {d.merge(how, prefix + c, f'excluded.{c}')}"
        for c, how in rollup.values.items()
        if c in values
    )
    if not rollup.counters:  # only a minimum or maximum: a row is written when it improves
        better = {"min": "<", "max": ">"}
        updates += " WHERE " + " OR ".join(
            f"excluded.{c} {better[how]} {prefix}{c}" for c, how in rollup.values.items()
        )
    columns = ", ".join((*rollup.keys, *rollup.values))
    conflict = f"ON CONFLICT ({', '.join(rollup.keys)}) DO UPDATE SET {updates}"
    if d.postgresql:
        listed = ", ".join(f"({row})" for row in rows)
        insert = f"INSERT INTO {target} ({columns}) VALUES {listed} {conflict}"
        return f"IF {guard} THEN {insert}{then}; END IF"
    (row,) = rows
    return f"INSERT INTO {target} ({columns}) SELECT {row} WHERE {guard} {conflict}"


def _first_day_hooks(part: _Part, d: Dialect, turned: str, guard: str = "") -> Any:
    """An employee's first day with a confirmed drop-off, when one of their days turns to
    having one (`turned` = 1: the earlier of the two) or to having none any more (-1: if it
    was the first, recomputed from their confirmed drop-offs). PostgreSQL: one IF statement
    (`turned` a variable); SQLite: statements guarded by `guard`."""
    k = part.keys
    who = f"department_id = {k['department_id']} AND user_id = {k['user_id']}"
    first = (
        f"INSERT INTO report_first_dropoffs{' AS t' if d.postgresql else ''} "
        "(department_id, user_id, first_day) "
        + (
            f"VALUES ({k['department_id']}, {k['user_id']}, {k['start_day']})"
            if d.postgresql
            else f"SELECT {k['department_id']}, {k['user_id']}, {k['start_day']} "
            f"WHERE {guard} AND {turned} = 1"
        )
        + " ON CONFLICT (department_id, user_id) DO UPDATE SET first_day = excluded.first_day "
        f"WHERE excluded.first_day < {'t.' if d.postgresql else ''}first_day"
    )
    again = f"AND {guard} AND {turned} = -1" if not d.postgresql else ""
    forget = (
        f"DELETE FROM report_first_dropoffs WHERE {who} AND first_day = {k['start_day']} {again}"
    )
    recompute = (
        "INSERT INTO report_first_dropoffs (department_id, user_id, first_day) "
        f"SELECT department_id, user_id, min({_logged_day('r', d)}) FROM dropoffs AS r "
        f"WHERE r.{who.replace(' AND user_id', ' AND r.user_id')} AND r.status = 'confirmed' "
        f"{again} GROUP BY department_id, user_id "
        "ON CONFLICT (department_id, user_id) DO NOTHING"
    )
    if d.postgresql:
        return (
            f"IF {turned} = 1 THEN {first}; ELSIF {turned} = -1 THEN {forget}; {recompute}; END IF"
        )
    return [first, forget, recompute]


def _watched(table: str, d: Dialect) -> str:
    differs = "IS DISTINCT FROM" if d.postgresql else "IS NOT"
    return " OR ".join(f"OLD.{c} {differs} NEW.{c}" for c in WATCHED[table])


EVENTS = {"INSERT": [("NEW", 1)], "UPDATE": [("OLD", -1), ("NEW", 1)], "DELETE": [("OLD", -1)]}


def _stale_marks(table: str, event: str, d: Dialect, local: _Locals | None) -> list[str]:
    """Each day row of a folded rollup that the write may change, when its month has ended
    (by the database's clock, at the commit): the department's month is marked stale, so
    reports read it from its day rows until the sweep folds it again. A write into the
    current month (nearly all of them) only compares two dates."""
    now = "clock_timestamp() AT TIME ZONE 'Asia/Shanghai'"
    if d.postgresql:
        assert local is not None
        this_month = local.of(f"CAST(date_trunc('month', {now}) AS date)", "date")
    else:
        this_month = "date('now', '+8 hours', 'start of month')"
    days = {
        (keys["department_id"], keys["day"]): None
        for rollup in FOLDED
        for source in rollup.sources
        if source.table == table
        for row, _ in EVENTS[event]
        for keys in [source.keys(row, d)]
    }
    statements = []
    for department, day in days:
        row = f"{department}, {d.start_of('month', day)}"
        insert = "INSERT INTO report_stale_months (department_id, month)"
        # DO UPDATE, not DO NOTHING: the mark's row lock orders this write with a fold that
        # deletes the mark (exchange/reports/months.py).
        marked = "ON CONFLICT (department_id, month) DO UPDATE SET month = excluded.month"
        if d.postgresql:
            statements.append(
                f"IF {day} < {this_month} THEN {insert} VALUES ({row}) {marked}; END IF"
            )
        else:
            statements.append(f"{insert} SELECT {row} WHERE {day} < {this_month} {marked}")
    return statements


def _body(table: str, event: str, d: Dialect, local: _Locals | None = None) -> list[str]:
    """What a trigger runs for one event on one raw table."""
    rollups = [
        r for r in ROLLUPS if r is not FIRST_DROPOFFS and any(s.table == table for s in r.sources)
    ]
    body = [s for r in rollups for s in _upserts(r, table, EVENTS[event], d, local)]
    body += _stale_marks(table, event, d, local)
    return (local.branch() if local else []) + body


def install_statements(dialect: str) -> list[str]:
    """The triggers (and on PostgreSQL their functions) that keep every rollup.

    On PostgreSQL they are constraint triggers deferred to the commit: a write takes its
    department's counter rows last, after the department's ledger head (which every writer
    takes before it commits), so two writers never wait on counter rows in opposite orders
    — an order's Python path inserts its row before it holds the points, so an immediate
    trigger would lock the day's counters before the head."""
    d = Dialect(dialect)
    statements = []
    for table in RAW:
        function = f"report_rollup_{table}"
        if d.postgresql:
            local = _Locals()
            branches = "\n  ELSIF ".join(
                f"TG_OP = '{event}' THEN\n    "
                + ";\n    ".join(_body(table, event, d, local))
                + ";"
                for event in EVENTS
            )
            declared = "".join(f"  {name} {t};\n" for name, t in local.declared.items())
            statements += [
                f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                f"DECLARE\n{declared}BEGIN\n  IF {branches}\n  END IF;\n  RETURN NULL;\nEND\n$$",
                f"DROP TRIGGER IF EXISTS {function}_write ON {table}",
                f"DROP TRIGGER IF EXISTS {function}_change ON {table}",
                f"CREATE CONSTRAINT TRIGGER {function}_write AFTER INSERT OR DELETE ON {table} "
                f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {function}()",
                f"CREATE CONSTRAINT TRIGGER {function}_change AFTER UPDATE ON {table} "
                f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN ({_watched(table, d)}) "
                f"EXECUTE FUNCTION {function}()",
            ]
            continue
        for event in EVENTS:
            when = f" WHEN {_watched(table, d)}" if event == "UPDATE" else ""
            name = f"{function}_{event.lower()}"
            statements += [
                f"DROP TRIGGER IF EXISTS {name}",
                f"CREATE TRIGGER {name} AFTER {event} ON {table}{when} BEGIN\n  "
                + ";\n  ".join(_body(table, event, d))
                + ";\nEND",
            ]
    return statements


def uninstall_statements(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [f"DROP FUNCTION IF EXISTS report_rollup_{table}() CASCADE" for table in RAW]
    return [
        f"DROP TRIGGER IF EXISTS report_rollup_{table}_{event.lower()}"
        for table in RAW
        for event in EVENTS
    ]


# --- recomputing from the raw rows -------------------------------------------------------------


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
    levels = [_grouped(rollup, " UNION ALL ".join(parts))]
    for span in rollup.spans:  # each span counts the rows of the one below above zero
        start = d.start_of(span, "below.start_day")
        counts = ", ".join(
            f"sum(CASE WHEN below.{c} > 0 THEN 1 ELSE 0 END) AS {c}" for c in rollup.counters
        )
        levels.append(
            f"SELECT below.department_id AS department_id, '{span}' AS span, {start} AS start_day, "
            f"below.user_id AS user_id, {counts} FROM ({levels[-1]}) AS below "
            f"GROUP BY below.department_id, {start}, below.user_id"
        )
    return " UNION ALL ".join(levels), params.values


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


def rebuild_statements(dialect: str, which: Sequence[Rollup] = ROLLUPS) -> list[str]:
    """Empty the rollups (every one, or those given) and fill them again from the raw rows."""
    statements = []
    for rollup in which:
        sql, _ = recompute_sql(rollup, dialect)
        columns = ", ".join((*rollup.keys, *rollup.values))
        statements += [f"DELETE FROM {rollup.name}", f"INSERT INTO {rollup.name} ({columns}) {sql}"]
    return statements


async def rebuild(conn: AsyncConnection) -> None:
    """Every rollup from the raw rows, and every closed month folded again."""
    from exchange.reports import months  # it builds on this module

    for statement in rebuild_statements(conn.dialect.name):
        await conn.execute(sa.text(statement))
    await months.refold(conn)


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
    """Every difference between the stored rollups and their recomputation from raw rows, and
    between the month rows and the day rows they were folded from."""
    from exchange.reports import months  # it builds on this module

    differences = []
    for rollup in ROLLUPS:
        stored = _significant(rollup, (await conn.execute(sa.select(rollup.table))).all())
        again = await conn.execute(sa.select(recomputed(rollup, conn.dialect.name)))
        fresh = _significant(rollup, again.all())
        for key in sorted(set(stored) | set(fresh), key=repr):
            if stored.get(key) != fresh.get(key):
                differences.append(Difference(rollup.name, key, stored.get(key), fresh.get(key)))
    return differences + await months.check(conn)
