"""Points expiry: a campaign may say when the points it issued expire — at a time, or N days
after it ends (default: never). The sweeper reminds each employee N days before (never before
the campaign has ended) and, once the time has come, moves what is left of that campaign's
points from the employee's account to the department's `expiry` account: one direct ledger
transfer per employee and campaign, exactly once (its idempotency key is
`expiry:<campaign>:<user>`, and `points_expiries` records it), referencing `expiry:<campaign>`.

Which points are a campaign's — first in, first out. An employee's account is replayed
entry by entry. Each credit (a drop-off's direct credit, the post of its pending credit, a
re-weighing's extra credit) is a lot of that drop-off's campaign. Spending takes from the
oldest lots first: an order's hold takes its points when it is placed and gives them back to
the same lots if it is cancelled or expires (a partial settlement keeps the oldest part).
An expiry takes from its own campaign's lots only. So what expires is exactly what is left
of the campaign's lots: never points held by an open order (those are taken out of the lots
while held, and the ledger refuses a debit past the available balance besides), never
points of another campaign.

Once a campaign's points have expired for an employee, that is final: points of it that
come back later (an order cancelled after the expiry, a drop-off a coordinator confirms
after it) stay the employee's.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.models import utcnow
from exchange.models import Campaign, Dropoff, DropoffStatus, PointsExpiry
from exchange.notify.models import Kind
from exchange.notify.outbox import write_message
from exchange.points import user_account
from ledger import transfers
from ledger.accounts import open_account
from ledger.encoding import Entry, to_us
from ledger.queries import MAX_LIMIT, list_entries

EXPIRY = "expiry"  # each department's account of expired points
ACTOR = "exchange:points-expiry"
D = Dropoff.__table__


def expiry_reference(campaign_id: str) -> str:
    return f"expiry:{campaign_id}"


def expires_at(campaign: Campaign) -> datetime | None:
    """When the campaign's points expire; None: never."""
    if campaign.points_expire_at is not None:
        return campaign.points_expire_at
    if campaign.points_expire_days is not None:
        return campaign.ends_at + timedelta(days=campaign.points_expire_days)
    return None


def reminder_at(campaign: Campaign, remind_before: timedelta) -> datetime | None:
    at = expires_at(campaign)
    return None if at is None else max(at - remind_before, campaign.ends_at)


# --- which points are a campaign's: first in, first out ------------------------------------


@dataclass
class _Lot:
    campaign: str | None
    left: int


@dataclass(frozen=True)
class Lots:
    """What is left of each campaign's points in an account (None: points of no campaign),
    and whether the replay found every debit covered (it always should)."""

    by_campaign: dict[str | None, int]
    consistent: bool

    def of(self, campaign_id: str) -> int:
        return self.by_campaign.get(campaign_id, 0)


def replay(
    account: str, entries: Iterable[Entry], campaign_of: Callable[[str], str | None]
) -> Lots:
    """Replay an account's entries in seq order into lots (see the module's docstring);
    `campaign_of(reference)` names the campaign of a credit's reference."""
    lots: list[_Lot] = []
    holds: dict[int, list[tuple[_Lot, int]]] = {}
    consistent = True

    def take(
        amount: int, campaign: str | None = None, any_lot: bool = True
    ) -> list[tuple[_Lot, int]]:
        nonlocal consistent
        taken = []
        for lot in lots:
            if amount == 0:
                break
            if lot.left and (lot.campaign == campaign or (any_lot and campaign is None)):
                n = min(lot.left, amount)
                lot.left -= n
                amount -= n
                taken.append((lot, n))
        if amount:
            consistent = False
        return taken

    for e in entries:
        if e.credit_account == account:
            if e.kind in ("direct", "post", "reversal"):
                campaign = None if e.kind == "reversal" else campaign_of(e.reference)
                lots.append(_Lot(campaign, e.amount))
            # a pending credit is not the employee's yet; its void releases nothing of theirs
        elif e.debit_account == account:
            if e.kind == "pending":
                holds[e.seq] = take(e.amount)
            elif e.kind in ("post", "void") and e.ref_seq in holds:
                settled = e.amount if e.kind == "post" else 0
                for lot, n in holds.pop(e.ref_seq):
                    kept = min(n, settled)
                    settled -= kept
                    lot.left += n - kept
            elif e.kind == "direct" and e.reference.startswith("expiry:"):
                take(e.amount, e.reference.removeprefix("expiry:"), any_lot=False)
            elif e.kind == "reversal":
                take(e.amount, campaign_of(e.reference), any_lot=False)
            else:
                take(e.amount)
    left: dict[str | None, int] = defaultdict(int)
    for lot in lots:
        left[lot.campaign] += lot.left
    return Lots(dict(left), consistent)


async def lots_of(session: AsyncSession, department_id: str, user_id: str) -> Lots:
    conn = await session.connection()
    campaigns = dict(
        (
            await conn.execute(
                select(D.c.id, D.c.campaign_id).where(
                    D.c.department_id == department_id, D.c.user_id == user_id
                )
            )
        ).all()
    )
    account = user_account(user_id)
    entries: list[Entry] = []
    after = None
    while True:
        page = await list_entries(
            session, department_id, account=account, after=after, limit=MAX_LIMIT
        )
        entries += page.entries
        if page.next is None:
            break
        after = page.next

    def campaign_of(reference: str) -> str | None:
        return campaigns.get(reference.removeprefix("dropoff:"))

    return replay(account, entries, campaign_of)


# --- the sweep -------------------------------------------------------------------------------


class ExpiryRace(Exception):
    """The account changed between reading its lots and writing the expiry: try again."""


@dataclass
class Swept:
    reminded: int = 0
    expired: int = 0
    points: int = 0


async def _members(
    session: AsyncSession, campaign_id: str, department_id: str | None
) -> list[tuple[str, str]]:
    """(department, employee) with a confirmed drop-off of the campaign."""
    conn = await session.connection()
    query = (
        select(D.c.department_id, D.c.user_id)
        .where(D.c.campaign_id == campaign_id, D.c.status == DropoffStatus.confirmed.value)
        .distinct()
        .order_by(D.c.department_id, D.c.user_id)
    )
    if department_id is not None:
        query = query.where(D.c.department_id == department_id)
    return [(row[0], row[1]) for row in (await conn.execute(query)).all()]


async def _record(
    session: AsyncSession, department_id: str, campaign_id: str, user_id: str
) -> PointsExpiry:
    row = await session.get(
        PointsExpiry, (department_id, campaign_id, user_id), with_for_update=True
    )
    return row or PointsExpiry(
        department_id=department_id, campaign_id=campaign_id, user_id=user_id
    )


async def remind(
    session: AsyncSession, campaign: Campaign, department_id: str, user_id: str, now: datetime
) -> bool:
    """Tell the employee how many of the campaign's points will expire, once."""
    record = await _record(session, department_id, campaign.id, user_id)
    if record.reminded_at is not None or record.expired_at is not None:
        return False
    points = (await lots_of(session, department_id, user_id)).of(campaign.id)
    record.reminded_at, record.reminded_points = now, points
    session.add(record)
    if points <= 0:
        return False
    at = expires_at(campaign)
    assert at is not None
    return await write_message(
        session,
        department_id=department_id,
        kind=Kind.points_expiring,
        recipient_id=user_id,
        reference=campaign.id,
        dedupe_key=f"expiry:{campaign.id}:{user_id}:reminder",
        now=now,
        detail={"points": points, "campaign": campaign.name, "expires_at": at.isoformat()},
    )


async def expire(
    session: AsyncSession, campaign: Campaign, department_id: str, user_id: str, now: datetime
) -> int:
    """Expire what is left of the campaign's points in the employee's account, once; returns
    how many points expired."""
    record = await _record(session, department_id, campaign.id, user_id)
    if record.expired_at is not None:
        return 0
    points = (await lots_of(session, department_id, user_id)).of(campaign.id)
    if points > 0:
        await open_account(session, department_id, EXPIRY, created_at_us=to_us(now))
        entry = await transfers.transfer(
            session,
            ledger_id=department_id,
            debit=user_account(user_id),
            credit=EXPIRY,
            amount=points,
            idempotency_key=f"expiry:{campaign.id}:{user_id}",
            actor=ACTOR,
            reference=expiry_reference(campaign.id),
            now=now,
        )
        # Read again under the ledger's lock, which the transfer now holds: an order placed
        # between the first reading and the transfer may have taken some of these points.
        if not (await lots_of(session, department_id, user_id)).consistent:
            raise ExpiryRace(user_id)
        record.ledger_seq = entry.seq
    record.expired_at, record.expired_points = now, max(points, 0)
    session.add(record)
    return max(points, 0)


async def sweep_expiry(
    session_factory: async_sessionmaker[AsyncSession],
    now: datetime | None = None,
    remind_before: timedelta = timedelta(days=7),
) -> Swept:
    """Remind and expire, for every campaign whose moment has come; one transaction per
    employee. A campaign's stage is marked done once every employee of it is done, so a
    finished campaign costs the sweep nothing more."""
    now = now or utcnow()
    swept = Swept()
    async with session_factory() as session, session.begin():
        due = await session.exec(
            select(Campaign).where(
                or_(
                    col(Campaign.points_expire_at).is_not(None),
                    col(Campaign.points_expire_days).is_not(None),
                ),
                col(Campaign.expiry_done_at).is_(None),
            )
        )
        campaigns = list(due.all())
    for campaign in campaigns:
        at, remind_at = expires_at(campaign), reminder_at(campaign, remind_before)
        assert at is not None and remind_at is not None
        expiring = now >= at
        if now < remind_at or (not expiring and campaign.expiry_reminded_at is not None):
            continue
        async with session_factory() as session, session.begin():
            members = await _members(session, campaign.id, campaign.department_id)
        complete = True
        for department_id, user_id in members:
            complete &= await _one(session_factory, campaign, department_id, user_id, now, swept)
        if complete:
            stage = "expiry_done_at" if expiring else "expiry_reminded_at"
            async with session_factory() as session, session.begin():
                conn = await session.connection()
                await conn.execute(
                    update(Campaign.__table__)
                    .where(Campaign.__table__.c.id == campaign.id)
                    .values({stage: now})
                )
    return swept


async def _one(
    session_factory: async_sessionmaker[AsyncSession],
    campaign: Campaign,
    department_id: str,
    user_id: str,
    now: datetime,
    swept: Swept,
) -> bool:
    """Remind or expire one employee, in a transaction of its own; whether it got done."""
    at = expires_at(campaign)
    assert at is not None
    for _try in range(3):
        try:
            async with session_factory() as session, session.begin():
                if now >= at:
                    points = await expire(session, campaign, department_id, user_id, now)
                    swept.expired += points > 0
                    swept.points += points
                else:
                    swept.reminded += await remind(session, campaign, department_id, user_id, now)
            return True
        except ExpiryRace:
            continue
    return False
