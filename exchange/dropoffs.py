"""Drop-offs: an employee logs what they left at a collection point and earns points.

Under the `auto` policy the credit posts at once (a direct transfer issuance → user); under
`steward` it is a pending credit until a coordinator confirms it (posting it, re-priced if
they weighed or counted something else) or rejects it (voiding it).

On PostgreSQL a drop-off and a decision as logged are one call of a server-side function
(exchange/sql/writes.sql, see exchange/one_call.py); the Python path below is the same rules
for SQLite, for every other case, and to answer what the function declines.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.identity import Identity
from catalog.models import User, new_id, utcnow
from catalog.paging import Page
from exchange import campaigns, one_call, points
from exchange.access import department_of, require_approved
from exchange.categories import CATEGORIES, Category, category
from exchange.errors import (
    CategoryNotRated,
    DailyCapReached,
    ForeignStation,
    InvalidInput,
    InvalidTransition,
    NoOpenCampaign,
    NotFound,
    StationInactive,
)
from exchange.idempotency import check_key, fingerprint, replay_of
from exchange.models import Campaign, CampaignRate, Dropoff, DropoffStatus, Policy, Station
from exchange.records import get_visible, list_records
from ledger import transfers
from ledger.db import Db
from ledger.encoding import to_us

MAX_REASON = 300
# pg_advisory_xact_lock class of "a user's drop-offs take turns" (ASCII "drop").
USER_DROPOFF_LOCK = 0x64726F70

D = Dropoff.__table__
U = User.__table__
S = Station.__table__
C = Campaign.__table__
R = CampaignRate.__table__

# SQLAlchemy Core statements of the Python path, built once and compiled once.

# The department's open campaign; its own wins over a platform-wide one.
_OPEN_CAMPAIGN = (
    select(C.c.id)
    .where(
        or_(C.c.department_id.is_(None), C.c.department_id == bindparam("department_id")),
        C.c.starts_at <= bindparam("now"),
        C.c.ends_at > bindparam("now"),
    )
    .order_by(C.c.department_id.is_(None))
    .limit(1)
    .scalar_subquery()
)
# The station, the open campaign and its rate for the category, in one round trip.
_CONTEXT = (
    select(
        U.c.id,
        S.c.id.label("station_id"),
        S.c.department_id.label("station_department"),
        S.c.name.label("station_name"),
        S.c.active.label("station_active"),
        C.c.id.label("campaign_id"),
        C.c.name.label("campaign_name"),
        C.c.policy,
        C.c.daily_cap_points,
        R.c.points.label("rate"),
    )
    .select_from(
        U.outerjoin(S, S.c.code == bindparam("code"))
        .outerjoin(C, C.c.id == _OPEN_CAMPAIGN)
        .outerjoin(R, and_(R.c.campaign_id == C.c.id, R.c.category == bindparam("category")))
    )
    .where(U.c.id == bindparam("user_id"))
)
# On PostgreSQL a user's drop-offs take turns on an advisory lock (the server-side path takes
# the same one), so the daily cap's sum sees each earlier drop-off of theirs. SQLite has one
# writer at a time anyway.
_LOCK_USER = select(func.pg_advisory_xact_lock(USER_DROPOFF_LOCK, func.hashtext(bindparam("user"))))
_USED_TODAY = select(func.coalesce(func.sum(D.c.points), 0)).where(
    D.c.department_id == bindparam("department_id"),
    D.c.user_id == bindparam("user_id"),
    D.c.local_day == bindparam("local_day"),
    D.c.status != DropoffStatus.rejected.value,
    D.c.id != bindparam("id"),
)
_BY_KEY = select(D).where(
    D.c.department_id == bindparam("department_id"),
    D.c.user_id == bindparam("user_id"),
    D.c.idempotency_key == bindparam("key"),
)
_INSERT = D.insert()

# A decision locks the drop-off and reads its campaign's cap in one round trip.
_LOCK_FOR_DECISION = (
    select(D, C.c.daily_cap_points)
    .join(C, C.c.id == D.c.campaign_id)
    .where(D.c.department_id == bindparam("department_id"), D.c.id == bindparam("dropoff_id"))
    .with_for_update(of=D)
)
_DECIDE = (
    update(D)
    .where(D.c.department_id == bindparam("of_department"), D.c.id == bindparam("of_dropoff"))
    .values(
        status=bindparam("status"),
        points=bindparam("points"),
        confirmed_quantity=bindparam("confirmed_quantity"),
        resolution_seq=bindparam("resolution_seq"),
        adjustment_seq=bindparam("adjustment_seq"),
        decided_at=bindparam("decided_at"),
        decided_by=bindparam("decided_by"),
        reject_reason=bindparam("reject_reason"),
    )
)

# The server-side calls (exchange/sql/writes.sql).
_LOG_CALL = "SELECT * FROM exchange_log_dropoff(" + ", ".join(f"${i}" for i in range(1, 21)) + ")"
_DECIDE_CALL = "SELECT * FROM exchange_decide_dropoff($1, $2, $3, $4, $5, $6, $7, $8)"


@dataclass(frozen=True)
class Logged:
    dropoff: Dropoff
    replayed: bool  # True: the idempotency key was seen before; this is the original


def _dropoff(row: Any, *, to_change: bool = False) -> Dropoff:
    """A drop-off from a row of either driver. Unless the caller will change it, built with
    model_construct: the values come from the database, and a table model's __init__
    (SQLAlchemy's instrumentation, which setting an attribute needs) costs ten times as much,
    a tenth of a drop-off's server CPU."""
    mapping = row._mapping if hasattr(row, "_mapping") else row
    values = {column.name: mapping[column.name] for column in D.columns}
    return Dropoff(**values) if to_change else Dropoff.model_construct(**values)


async def _points_today(
    conn: AsyncConnection, department_id: str, user_id: str, day: str, *, excluding: str = ""
) -> int:
    params = {"department_id": department_id, "user_id": user_id, "local_day": day}
    return int((await conn.execute(_USED_TODAY, {**params, "id": excluding})).scalar_one())


@dataclass(frozen=True)
class _NewDropoff:
    """A drop-off request, checked as far as it can be without the database."""

    caller: Identity
    department_id: str
    key: str
    request_hash: str
    station_code: str
    category_code: str
    quantity: int
    unit: str | None
    now: datetime
    id: str = field(default_factory=new_id)

    @property
    def ledger_key(self) -> str:
        return f"dropoff:{self.id}:credit"


async def log_dropoff(
    db: Db,
    caller: Identity,
    *,
    station_code: str,
    category_code: str,
    quantity: int,
    idempotency_key: str | None,
    unit: str | None = None,
    now: datetime | None = None,
) -> Logged:
    """Log the caller's drop-off and credit its points; a retry with the same key answers the
    original drop-off (``replayed``)."""
    request = _NewDropoff(
        caller=caller,
        department_id=department_of(caller, "Drop-offs"),
        key=check_key(idempotency_key),
        request_hash=fingerprint(
            {
                "station_code": station_code,
                "category": category_code,
                "quantity": quantity,
                "unit": unit,
            }
        ),
        station_code=station_code,
        category_code=category_code,
        quantity=quantity,
        unit=unit,
        now=now or utcnow(),
    )
    require_approved(caller)
    if (row := await _log_in_one_call(db, request)) is not None:
        return Logged(_dropoff(row), replayed=False)
    async with one_call.transaction(db) as conn:
        return await _log(conn, request)


async def _log_in_one_call(db: Db, r: _NewDropoff) -> Any:
    """The drop-off as one server-side call, where it can be; None: take the Python path
    (not PostgreSQL, a transaction already open, or anything but a plain new drop-off)."""
    kind = CATEGORIES.get(r.category_code)
    if kind is None or not kind.accepts(r.quantity, r.unit):
        return None  # the Python path names what is wrong, in the documented order
    earning = points.earning(r.caller.user_id)
    return await one_call.call(
        db, _LOG_CALL, r.department_id, r.caller.user_id, r.id, r.key, r.request_hash,
        r.station_code.strip().lower(), kind.code, kind.unit.value, r.quantity, kind.per, r.now,
        campaigns.local_day(r.now), to_us(r.now), USER_DROPOFF_LOCK, earning["debit"],
        earning["credit"], *earning["open_with"], r.ledger_key, points.dropoff_reference(r.id),
    )  # fmt: skip


async def _log(conn: AsyncConnection, r: _NewDropoff) -> Logged:
    """The Python path: the same rules, step by step, each refusal named."""
    user_id = r.caller.user_id
    if conn.dialect.name == "postgresql":
        await conn.execute(_LOCK_USER, {"user": f"{r.department_id}/{user_id}"})
    by_key = {"department_id": r.department_id, "user_id": user_id, "key": r.key}
    if (found := await replay_of(conn, _BY_KEY, by_key, r.key, r.request_hash)) is not None:
        # A retry of a request that succeeded gets its original answer, even if the station
        # or the campaign changed since.
        return Logged(_dropoff(found), replayed=True)
    context = (
        await conn.execute(
            _CONTEXT,
            {"user_id": user_id, "department_id": r.department_id,
             "code": r.station_code.strip().lower(), "category": r.category_code, "now": r.now},
        )
    ).one_or_none()  # fmt: skip
    kind, rate, earned = _priced(
        r.caller, context, r.station_code, r.category_code, r.quantity, r.unit
    )
    day = campaigns.local_day(r.now)
    _check_cap(
        context.daily_cap_points, await _points_today(conn, r.department_id, user_id, day), earned
    )
    auto = context.policy == Policy.auto
    entry = await transfers.transfer(
        conn,
        ledger_id=r.department_id,
        **points.earning(user_id),
        amount=earned,
        idempotency_key=r.ledger_key,
        actor=user_id,
        reference=points.dropoff_reference(r.id),
        pending=not auto,
        now=r.now,
    )
    dropoff = Dropoff(
        department_id=r.department_id,
        id=r.id,
        user_id=user_id,
        station_id=context.station_id,
        campaign_id=context.campaign_id,
        category=kind.code,
        unit=kind.unit.value,
        quantity=r.quantity,
        rate_points=rate,
        points=earned,
        status=DropoffStatus.confirmed if auto else DropoffStatus.pending,
        local_day=day,
        ledger_seq=entry.seq,
        created_at=r.now,
        decided_at=r.now if auto else None,
        idempotency_key=r.key,
        request_hash=r.request_hash,
    )
    await conn.execute(_INSERT, {c.name: getattr(dropoff, c.name) for c in D.columns})
    return Logged(dropoff, replayed=False)


def _priced(
    caller: Identity,
    context: Any,
    station_code: str,
    category_code: str,
    quantity: int,
    unit: str | None,
) -> tuple[Category, int, int]:
    """The checks of a new drop-off, in the order the API documents them; its category,
    rate and points."""
    if context is None:
        raise NotFound("Your account no longer exists.")
    if context.station_id is None:
        raise NotFound(f"No collection point with code {station_code!r}.")
    if not caller.may_see_department(context.station_department):
        raise ForeignStation(
            "This collection point belongs to another department; use one of your own."
        )
    if not context.station_active:
        raise StationInactive(
            f"The collection point {context.station_name!r} is not in use any more."
        )
    kind = category(category_code)
    kind.check_unit(unit)
    kind.check_quantity(quantity)
    if context.campaign_id is None:
        raise NoOpenCampaign(
            "No exchange campaign is open right now, so drop-offs cannot be recorded."
        )
    if context.rate is None:
        raise CategoryNotRated(
            f"The campaign {context.campaign_name!r} gives no points for {category_code!r}."
        )
    rate = int(context.rate)
    points = kind.points(quantity, rate)
    if points < 1:
        raise InvalidInput(
            "quantity", f"earns no points at {rate} points per {kind.rate_unit}; bring more"
        )
    return kind, rate, points


def _check_cap(daily_cap: int, used: int, points: int) -> None:
    remaining = max(0, daily_cap - used)
    if points > remaining:
        raise DailyCapReached(
            f"This drop-off is worth {points} points but only {remaining} of the daily cap of "
            f"{daily_cap} points are left today (Asia/Shanghai).",
            daily_cap,
            remaining,
        )


async def get_dropoff(session: AsyncSession, caller: Identity, dropoff_id: str) -> Dropoff:
    return await get_visible(session, Dropoff, caller, dropoff_id, "drop-off")


async def list_dropoffs(
    session: AsyncSession,
    department_id: str,
    *,
    user_id: str | None,
    status: str | None,
    limit: int,
    after: str | None,
    before: str | None = None,
    newest_first: bool = False,
) -> Page[Dropoff]:
    return await list_records(
        session,
        Dropoff,
        DropoffStatus,
        department_id,
        user_id=user_id,
        status=status,
        limit=limit,
        after=after,
        before=before,
        newest_first=newest_first,
    )


async def _pending_for_decision(
    conn: AsyncConnection, department_id: str, dropoff_id: str, action: str
) -> tuple[Dropoff, int]:
    """The pending drop-off, locked, and its campaign's daily cap."""
    row = (
        await conn.execute(
            _LOCK_FOR_DECISION, {"department_id": department_id, "dropoff_id": dropoff_id}
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"No drop-off {dropoff_id!r}.")
    dropoff = _dropoff(row, to_change=True)
    if dropoff.status != DropoffStatus.pending:
        raise InvalidTransition(
            f"The drop-off is {dropoff.status}; only pending drop-offs can be {action}.",
            dropoff.status,
        )
    return dropoff, row.daily_cap_points


async def _decide(conn: AsyncConnection, dropoff: Dropoff) -> Dropoff:
    await conn.execute(
        _DECIDE,
        {
            "of_department": dropoff.department_id,
            "of_dropoff": dropoff.id,
            "status": dropoff.status,
            "points": dropoff.points,
            "confirmed_quantity": dropoff.confirmed_quantity,
            "resolution_seq": dropoff.resolution_seq,
            "adjustment_seq": dropoff.adjustment_seq,
            "decided_at": dropoff.decided_at,
            "decided_by": dropoff.decided_by,
            "reject_reason": dropoff.reject_reason,
        },
    )
    return dropoff


async def _decided_as_logged(
    db: Db,
    department_id: str,
    dropoff_id: str,
    actor_id: str,
    kind: str,
    reason: str | None,
    now: datetime,
) -> Dropoff | None:
    """The decision as one server-side call, where it can be; None: take the Python path."""
    row = await one_call.call(
        db, _DECIDE_CALL, department_id, dropoff_id, actor_id, kind, reason, now, to_us(now),
        f"dropoff:{dropoff_id}:{kind}",  # the Python path's keys: ...:post, ...:void
    )  # fmt: skip
    return None if row is None else _dropoff(row)


async def confirm_dropoff(
    db: Db,
    department_id: str,
    dropoff_id: str,
    actor_id: str,
    *,
    quantity: int | None = None,
    now: datetime | None = None,
) -> Dropoff:
    """Post the pending credit. A corrected quantity re-prices at the snapshotted rate: less
    posts part of the pending credit; more posts all of it and credits the difference. The
    daily cap still holds: extra points beyond it are not credited."""
    now = now or utcnow()
    if quantity is None and (
        done := await _decided_as_logged(
            db, department_id, dropoff_id, actor_id, transfers.POST, None, now
        )
    ):
        return done
    async with one_call.transaction(db) as conn:
        dropoff, daily_cap = await _pending_for_decision(
            conn, department_id, dropoff_id, "confirmed"
        )
        kind = category(dropoff.category)
        final_quantity = dropoff.quantity if quantity is None else quantity
        kind.check_quantity(final_quantity)
        earned = kind.points(final_quantity, dropoff.rate_points)
        if earned > dropoff.points:
            used = await _points_today(
                conn, department_id, dropoff.user_id, dropoff.local_day, excluding=dropoff.id
            )
            earned = min(earned, max(dropoff.points, daily_cap - used))

        if earned == 0:
            # Re-weighed to nothing worth a point: the credit is released, not posted.
            entry = await transfers.void_pending(
                conn,
                ledger_id=department_id,
                pending_seq=dropoff.ledger_seq,
                idempotency_key=f"dropoff:{dropoff.id}:void",
                actor=actor_id,
                now=now,
            )
        else:
            entry = await transfers.post_pending(
                conn,
                ledger_id=department_id,
                pending_seq=dropoff.ledger_seq,
                amount=min(earned, dropoff.points),
                idempotency_key=f"dropoff:{dropoff.id}:post",
                actor=actor_id,
                now=now,
            )
        dropoff.resolution_seq = entry.seq
        if earned > dropoff.points:
            extra = await transfers.transfer(
                conn,
                ledger_id=department_id,
                **points.earning(dropoff.user_id),
                amount=earned - dropoff.points,
                idempotency_key=f"dropoff:{dropoff.id}:adjust",
                actor=actor_id,
                reference=points.dropoff_reference(dropoff.id),
                now=now,
            )
            dropoff.adjustment_seq = extra.seq
        dropoff.confirmed_quantity = final_quantity
        dropoff.points = earned
        dropoff.status = DropoffStatus.confirmed
        dropoff.decided_at = now
        dropoff.decided_by = actor_id
        return await _decide(conn, dropoff)


async def reject_dropoff(
    db: Db,
    department_id: str,
    dropoff_id: str,
    actor_id: str,
    *,
    reason: str,
    now: datetime | None = None,
) -> Dropoff:
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise InvalidInput("reason", f"1-{MAX_REASON} characters saying why")
    now = now or utcnow()
    if done := await _decided_as_logged(
        db, department_id, dropoff_id, actor_id, transfers.VOID, reason, now
    ):
        return done
    async with one_call.transaction(db) as conn:
        dropoff, _ = await _pending_for_decision(conn, department_id, dropoff_id, "rejected")
        entry = await transfers.void_pending(
            conn,
            ledger_id=department_id,
            pending_seq=dropoff.ledger_seq,
            idempotency_key=f"dropoff:{dropoff.id}:void",
            actor=actor_id,
            now=now,
        )
        dropoff.resolution_seq = entry.seq
        dropoff.status = DropoffStatus.rejected
        dropoff.decided_at = now
        dropoff.decided_by = actor_id
        dropoff.reject_reason = reason
        return await _decide(conn, dropoff)
