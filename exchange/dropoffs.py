"""Drop-offs: an employee logs what they left at a collection point and earns points.

Under the `auto` policy the credit posts at once (a direct transfer issuance → user); under
`steward` it is a pending credit until a coordinator confirms it (posting it, re-priced if
they weighed or counted something else) or rejects it (voiding it).
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.identity import Identity
from catalog.models import User, new_id, utcnow
from catalog.paging import Page
from exchange import campaigns
from exchange.access import require_approved
from exchange.categories import Category, category
from exchange.errors import (
    CategoryNotRated,
    DailyCapReached,
    ExchangeError,
    ForeignStation,
    InvalidInput,
    InvalidTransition,
    NoOpenCampaign,
    NotFound,
    StationInactive,
)
from exchange.idempotency import Claim, check_key, check_replay, fingerprint
from exchange.models import Campaign, CampaignRate, Dropoff, DropoffStatus, Policy, Station
from exchange.points import ISSUANCE, dropoff_reference, transfer_for, user_account
from exchange.records import get_visible, list_records
from ledger import transfers

MAX_REASON = 300

D = Dropoff.__table__
U = User.__table__
S = Station.__table__
C = Campaign.__table__
R = CampaignRate.__table__

# SQLAlchemy Core statements, built once and compiled once: the drop-off path is the
# hottest write of the service, so it reads in as few round trips as its invariants allow.

# The department's open campaign; its own wins over a platform-wide one.
_OPEN_CAMPAIGN = (
    select(C.c.id)
    .where(
        or_(C.c.department_id.is_(None), C.c.department_id == bindparam("dep")),
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
    .where(U.c.id == bindparam("uid"))
)
# ... read while locking the user: their drop-offs take turns, so the daily cap counted by
# the claim below sees every earlier drop-off of theirs. FOR NO KEY UPDATE does not block
# inserts of rows referencing the user (they take KEY SHARE); SQLite has one writer and
# ignores the clause.
_LOCK_AND_CONTEXT = _CONTEXT.with_for_update(of=U, key_share=True)
_USED_TODAY = (
    select(func.coalesce(func.sum(D.c.points), 0))
    .where(
        D.c.department_id == bindparam("department_id"),
        D.c.user_id == bindparam("user_id"),
        D.c.local_day == bindparam("local_day"),
        D.c.status != DropoffStatus.rejected.value,
        D.c.id != bindparam("id"),
    )
    .scalar_subquery()
)
# The drop-off, inserted only if its key is new and it fits under the daily cap: one round
# trip for the key check, the cap and the write. Its statement starts after the user lock
# was granted, so at READ COMMITTED the sum sees the user's previous drop-off.
_CLAIM = Claim(
    D,
    select(*[bindparam(c.name, type_=c.type) for c in D.columns]).where(
        _USED_TODAY + bindparam("points") <= bindparam("cap")
    ),
)
_BY_KEY = select(D).where(
    D.c.department_id == bindparam("dep"),
    D.c.user_id == bindparam("uid"),
    D.c.idempotency_key == bindparam("key"),
)
_CREDITED = (
    update(D)
    .where(D.c.department_id == bindparam("b_dep"), D.c.id == bindparam("b_id"))
    .values(
        ledger_seq=bindparam("ledger_seq"),
        status=bindparam("status"),
        decided_at=bindparam("decided_at"),
    )
)


# A decision locks the drop-off and reads its campaign's cap in one round trip.
_LOCK_FOR_DECISION = (
    select(D, C.c.daily_cap_points)
    .join(C, C.c.id == D.c.campaign_id)
    .where(D.c.department_id == bindparam("dep"), D.c.id == bindparam("id"))
    .with_for_update(of=D)
)
_DECIDE = (
    update(D)
    .where(D.c.department_id == bindparam("b_dep"), D.c.id == bindparam("b_id"))
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


@dataclass(frozen=True)
class Logged:
    dropoff: Dropoff
    replayed: bool  # True: the idempotency key was seen before; this is the original


def _dropoff(row: Any) -> Dropoff:
    return Dropoff(**{column.name: row._mapping[column.name] for column in D.columns})


async def _points_today(
    conn: AsyncConnection, department_id: str, user_id: str, day: str, *, excluding: str = ""
) -> int:
    params = {"department_id": department_id, "user_id": user_id, "local_day": day}
    return int((await conn.execute(select(_USED_TODAY), {**params, "id": excluding})).scalar_one())


async def _by_key(
    conn: AsyncConnection, department_id: str, user_id: str, key: str
) -> Dropoff | None:
    row = (
        await conn.execute(_BY_KEY, {"dep": department_id, "uid": user_id, "key": key})
    ).one_or_none()
    return None if row is None else _dropoff(row)


async def log_dropoff(
    session: AsyncSession,
    caller: Identity,
    *,
    station_code: str,
    category_code: str,
    quantity: int,
    idempotency_key: str | None,
    unit: str | None = None,
    now: datetime | None = None,
) -> Logged:
    key = check_key(idempotency_key)
    if caller.department_id is None:
        raise InvalidInput("station_code", "only members of a department log drop-offs")
    require_approved(caller)
    department_id, user_id = caller.department_id, caller.user_id
    request_hash = fingerprint(
        {
            "station_code": station_code,
            "category": category_code,
            "quantity": quantity,
            "unit": unit,
        }
    )
    now = now or utcnow()
    conn = await session.connection()
    context = (
        await conn.execute(
            _LOCK_AND_CONTEXT,
            {
                "uid": user_id,
                "dep": department_id,
                "code": station_code.strip().lower(),
                "category": category_code,
                "now": now,
            },
        )
    ).one_or_none()
    try:
        kind, rate, points = _priced(caller, context, station_code, category_code, quantity, unit)
    except ExchangeError:
        # A retry of a request that succeeded gets its original answer, even if the
        # station or the campaign changed since.
        if (found := await _by_key(conn, department_id, user_id, key)) is not None:
            check_replay(key, found.request_hash, request_hash)
            return Logged(found, replayed=True)
        raise
    assert context is not None

    auto = context.policy == Policy.auto
    values = {
        "department_id": department_id,
        "id": new_id(),
        "user_id": user_id,
        "station_id": context.station_id,
        "campaign_id": context.campaign_id,
        "category": kind.code,
        "unit": kind.unit.value,
        "quantity": quantity,
        "confirmed_quantity": None,
        "rate_points": rate,
        "points": points,
        "status": DropoffStatus.pending.value,
        "local_day": campaigns.local_day(now),
        "ledger_seq": 0,
        "resolution_seq": None,
        "adjustment_seq": None,
        "created_at": now,
        "decided_at": None,
        "decided_by": None,
        "reject_reason": None,
        "idempotency_key": key,
        "request_hash": request_hash,
    }
    if not await _CLAIM(conn, {**values, "cap": context.daily_cap_points}):
        if (found := await _by_key(conn, department_id, user_id, key)) is not None:
            check_replay(key, found.request_hash, request_hash)
            return Logged(found, replayed=True)
        used = await _points_today(conn, department_id, user_id, values["local_day"])
        _check_cap(context.daily_cap_points, used, points)
        raise AssertionError("the claim failed with neither its key taken nor the cap reached")

    dropoff = Dropoff(**values)
    entry = await transfer_for(
        session,
        department_id,
        user_id,
        debit=ISSUANCE,
        credit=user_account(user_id),
        amount=points,
        idempotency_key=f"dropoff:{dropoff.id}:credit",
        actor=user_id,
        reference=dropoff_reference(dropoff.id),
        pending=not auto,
        now=now,
    )
    dropoff.ledger_seq = entry.seq
    if auto:
        dropoff.status = DropoffStatus.confirmed
        dropoff.decided_at = now
    await conn.execute(
        _CREDITED,
        {
            "b_dep": department_id,
            "b_id": dropoff.id,
            "ledger_seq": entry.seq,
            "status": dropoff.status,
            "decided_at": dropoff.decided_at,
        },
    )
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
        await conn.execute(_LOCK_FOR_DECISION, {"dep": department_id, "id": dropoff_id})
    ).one_or_none()
    if row is None:
        raise NotFound(f"No drop-off {dropoff_id!r}.")
    dropoff = _dropoff(row)
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
            "b_dep": dropoff.department_id,
            "b_id": dropoff.id,
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


async def confirm_dropoff(
    session: AsyncSession,
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
    conn = await session.connection()
    dropoff, daily_cap = await _pending_for_decision(conn, department_id, dropoff_id, "confirmed")
    kind = category(dropoff.category)
    final_quantity = dropoff.quantity if quantity is None else quantity
    kind.check_quantity(final_quantity)
    points = kind.points(final_quantity, dropoff.rate_points)
    if points > dropoff.points:
        used = await _points_today(
            conn, department_id, dropoff.user_id, dropoff.local_day, excluding=dropoff.id
        )
        points = min(points, max(dropoff.points, daily_cap - used))

    reference = dropoff_reference(dropoff.id)
    if points == 0:
        # Re-weighed to nothing worth a point: the credit is released, not posted.
        entry = await transfers.void_pending(
            session,
            ledger_id=department_id,
            pending_seq=dropoff.ledger_seq,
            idempotency_key=f"dropoff:{dropoff.id}:void",
            actor=actor_id,
            now=now,
        )
    else:
        entry = await transfers.post_pending(
            session,
            ledger_id=department_id,
            pending_seq=dropoff.ledger_seq,
            amount=min(points, dropoff.points),
            idempotency_key=f"dropoff:{dropoff.id}:post",
            actor=actor_id,
            now=now,
        )
    dropoff.resolution_seq = entry.seq
    if points > dropoff.points:
        extra = await transfers.transfer(
            session,
            ledger_id=department_id,
            debit=ISSUANCE,
            credit=user_account(dropoff.user_id),
            amount=points - dropoff.points,
            idempotency_key=f"dropoff:{dropoff.id}:adjust",
            actor=actor_id,
            reference=reference,
            now=now,
        )
        dropoff.adjustment_seq = extra.seq
    dropoff.confirmed_quantity = final_quantity
    dropoff.points = points
    dropoff.status = DropoffStatus.confirmed
    dropoff.decided_at = now
    dropoff.decided_by = actor_id
    return await _decide(conn, dropoff)


async def reject_dropoff(
    session: AsyncSession,
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
    conn = await session.connection()
    dropoff, _ = await _pending_for_decision(conn, department_id, dropoff_id, "rejected")
    entry = await transfers.void_pending(
        session,
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
