"""Drop-offs: an employee logs what they left at a collection point and earns points.

Under the `auto` policy the credit posts at once (a direct transfer issuance → user); under
`steward` it is a pending credit until a coordinator confirms it (posting it, re-priced if
they weighed or counted something else) or rejects it (voiding it).
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.identity import Identity
from catalog.models import utcnow
from catalog.paging import Page
from exchange import campaigns
from exchange.access import require_approved
from exchange.categories import category
from exchange.errors import DailyCapReached, InvalidInput, InvalidTransition, NotFound
from exchange.idempotency import check_key, check_replay, fingerprint, lock_user
from exchange.models import Campaign, Dropoff, DropoffStatus, Policy
from exchange.points import ISSUANCE, dropoff_reference, open_accounts, user_account
from exchange.records import get_visible, list_records
from exchange.stations import usable_station
from ledger import transfers

MAX_REASON = 300


@dataclass(frozen=True)
class Logged:
    dropoff: Dropoff
    replayed: bool  # True: the idempotency key was seen before; this is the original


async def _points_today(
    session: AsyncSession, department_id: str, user_id: str, day: str, *, excluding: str = ""
) -> int:
    total = await session.exec(
        select(func.coalesce(func.sum(Dropoff.points), 0)).where(
            Dropoff.department_id == department_id,
            Dropoff.user_id == user_id,
            Dropoff.local_day == day,
            Dropoff.status != DropoffStatus.rejected,
            Dropoff.id != excluding,
        )
    )
    return int(total.one())


async def _existing(
    session: AsyncSession, department_id: str, user_id: str, key: str
) -> Dropoff | None:
    found = await session.exec(
        select(Dropoff).where(
            Dropoff.department_id == department_id,
            Dropoff.user_id == user_id,
            Dropoff.idempotency_key == key,
        )
    )
    return found.first()


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
    await lock_user(session, user_id)
    if (found := await _existing(session, department_id, user_id, key)) is not None:
        check_replay(key, found.request_hash, request_hash)
        return Logged(found, replayed=True)

    now = now or utcnow()
    station = await usable_station(session, caller, station_code)
    kind = category(category_code)
    kind.check_unit(unit)
    kind.check_quantity(quantity)
    campaign = await campaigns.open_campaign(session, department_id, now)
    rate = await campaigns.rate_for(session, campaign, kind.code)
    points = kind.points(quantity, rate)
    if points < 1:
        raise InvalidInput(
            "quantity", f"earns no points at {rate} points per {kind.rate_unit}; bring more"
        )
    day = campaigns.local_day(now)
    used = await _points_today(session, department_id, user_id, day)
    _check_cap(campaign, used, points)

    dropoff = Dropoff(
        department_id=department_id,
        user_id=user_id,
        station_id=station.id,
        campaign_id=campaign.id,
        category=kind.code,
        unit=kind.unit.value,
        quantity=quantity,
        rate_points=rate,
        points=points,
        status=DropoffStatus.pending,
        local_day=day,
        ledger_seq=0,
        created_at=now,
        idempotency_key=key,
        request_hash=request_hash,
    )
    if (original := await _claim(session, dropoff)) is not None:
        check_replay(key, original.request_hash, request_hash)
        return Logged(original, replayed=True)

    auto = campaign.policy == Policy.auto
    await open_accounts(session, department_id, user_id)
    entry = await transfers.transfer(
        session,
        ledger_id=department_id,
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
    session.add(dropoff)
    await session.flush()
    return Logged(dropoff, replayed=False)


async def _claim(session: AsyncSession, dropoff: Dropoff) -> Dropoff | None:
    """Insert the drop-off, taking its idempotency key; None when that worked, else the
    drop-off a concurrent request with the same key committed first."""
    try:
        async with session.begin_nested():
            session.add(dropoff)
        return None
    except IntegrityError:
        # Only reachable if something bypassed the user lock: the unique index decides.
        original = await _existing(
            session, dropoff.department_id, dropoff.user_id, dropoff.idempotency_key
        )
        if original is None:
            raise
        return original


def _check_cap(campaign: Campaign, used: int, points: int) -> None:
    remaining = max(0, campaign.daily_cap_points - used)
    if points > remaining:
        raise DailyCapReached(
            f"This drop-off is worth {points} points but only {remaining} of the daily cap of "
            f"{campaign.daily_cap_points} points are left today (Asia/Shanghai).",
            campaign.daily_cap_points,
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
    session: AsyncSession, department_id: str, dropoff_id: str, action: str
) -> Dropoff:
    dropoff = await session.get(
        Dropoff, (department_id, dropoff_id), with_for_update=True, populate_existing=True
    )
    if dropoff is None:
        raise NotFound(f"No drop-off {dropoff_id!r}.")
    if dropoff.status != DropoffStatus.pending:
        raise InvalidTransition(
            f"The drop-off is {dropoff.status}; only pending drop-offs can be {action}.",
            dropoff.status,
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
    dropoff = await _pending_for_decision(session, department_id, dropoff_id, "confirmed")
    kind = category(dropoff.category)
    final_quantity = dropoff.quantity if quantity is None else quantity
    kind.check_quantity(final_quantity)
    points = kind.points(final_quantity, dropoff.rate_points)
    if points > dropoff.points:
        campaign = await campaigns.get_campaign(session, dropoff.campaign_id)
        used = await _points_today(
            session, department_id, dropoff.user_id, dropoff.local_day, excluding=dropoff.id
        )
        points = min(points, max(dropoff.points, campaign.daily_cap_points - used))

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
    session.add(dropoff)
    await session.flush()
    return dropoff


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
    dropoff = await _pending_for_decision(session, department_id, dropoff_id, "rejected")
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
    session.add(dropoff)
    await session.flush()
    return dropoff
