"""The outbox: the messages events wrote, who each goes to, and what became of it.

Messages of drop-off decisions, orders and department applications are written by database
triggers in the event's own transaction (migration 0012), so a rolled-back event leaves no
message. The events nobody's request makes — an order to pick up by tomorrow, the
department's daily figures, points about to expire (exchange/expiry.py) — are written by the
sweeping process, each under a dedupe key, so however often it runs or restarts, an event
gives one message.

A message is fanned out into deliveries once: an e-mail to the employee it is for (if they
gave an address and did not opt out), to each platform admin for an application, or a post
to each of the department's group robots for its daily figures.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, exists, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.identity import Identity
from catalog.models import Department, Role, User, UserRole, new_id, utcnow
from exchange.errors import InvalidInput, NotFound
from exchange.models import Order, OrderStatus
from exchange.notify.models import Delivery, DeliveryState, Kind, Message, RobotChannel
from exchange.notify.texts import SHANGHAI

M = Message.__table__
DL = Delivery.__table__
O = Order.__table__  # noqa: E741
U = User.__table__

PERSONAL = frozenset(
    {
        Kind.dropoff_confirmed,
        Kind.dropoff_rejected,
        Kind.order_ready,
        Kind.order_expiring,
        Kind.order_released,
        Kind.points_expiring,
    }
)
REMIND_BEFORE = timedelta(days=1)  # "your order expires tomorrow"


def _insert_ignore(dialect: str, table: Any) -> Any:
    return (
        (postgresql if dialect == "postgresql" else sqlite).insert(table).on_conflict_do_nothing()
    )


async def write_message(
    session: AsyncSession,
    *,
    department_id: str,
    kind: Kind,
    reference: str,
    dedupe_key: str,
    now: datetime,
    recipient_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> bool:
    """Add a message unless its dedupe key was used; whether it was added."""
    conn = await session.connection()
    result = await conn.execute(
        _insert_ignore(conn.dialect.name, M),
        {
            "department_id": department_id,
            "id": new_id(),
            "kind": kind.value,
            "recipient_id": recipient_id,
            "reference": reference,
            "dedupe_key": dedupe_key,
            "detail": json.dumps(detail or {}, ensure_ascii=False, sort_keys=True),
            "created_at": now,
            "fanned_out": False,
        },
    )
    return result.rowcount == 1


# --- events the sweeper makes ----------------------------------------------------------------


async def remind_orders(session: AsyncSession, department_id: str, now: datetime) -> int:
    """One reminder for each reserved order due within a day that lived longer than that."""
    conn = await session.connection()
    key = "order:" + O.c.id + ":expiring"
    due = await conn.execute(
        select(O.c.id, O.c.user_id, O.c.created_at, O.c.expires_at).where(
            O.c.department_id == department_id,
            O.c.status == OrderStatus.reserved.value,
            O.c.expires_at > now,
            O.c.expires_at <= now + REMIND_BEFORE,
            ~exists().where(M.c.department_id == O.c.department_id, M.c.dedupe_key == key),
        )
    )
    written = 0
    for order in due.all():
        if order.expires_at - order.created_at <= REMIND_BEFORE:
            continue  # placed less than a day before its end: the order's own message said when
        written += await write_message(
            session,
            department_id=department_id,
            kind=Kind.order_expiring,
            recipient_id=order.user_id,
            reference=order.id,
            dedupe_key=f"order:{order.id}:expiring",
            now=now,
        )
    return written


async def post_daily_figures(session: AsyncSession, now: datetime, at: time) -> int:
    """Once a day, at `at` Asia/Shanghai or the first sweep after it, a message with the day's
    figures for each department that has a group robot switched on."""
    local_now = now.astimezone(SHANGHAI)
    if local_now.time() < at:
        return 0
    day = local_now.date().isoformat()
    found = await session.exec(
        select(RobotChannel.department_id)
        .where(col(RobotChannel.enabled).is_(True))
        .distinct()
        .order_by(RobotChannel.department_id)
    )
    written = 0
    for department_id in found.all():
        written += await write_message(
            session,
            department_id=department_id,
            kind=Kind.daily_figures,
            reference=day,
            dedupe_key=f"figures:{day}",
            now=now,
        )
    return written


async def sweep_events(
    session_factory: async_sessionmaker[AsyncSession], now: datetime, figures_at: time
) -> int:
    """Write the messages of the events the clock makes; returns how many."""
    async with session_factory() as session, session.begin():
        written = await post_daily_figures(session, now, figures_at)
        department_ids = (await session.exec(select(Department.id).order_by(Department.id))).all()
    for department_id in department_ids:
        async with session_factory() as session, session.begin():
            written += await remind_orders(session, department_id, now)
    return written


# --- fan-out ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    channel: str
    target: str


async def _email_targets(session: AsyncSession, user_ids: list[str]) -> list[Target]:
    found = await session.exec(
        select(User.id).where(
            col(User.id).in_(user_ids),
            col(User.is_active).is_(True),
            col(User.email).is_not(None),
            col(User.email_opt_out).is_(False),
        )
    )
    return [Target("email", f"user:{user_id}") for user_id in found.all()]


async def targets_of(session: AsyncSession, message: Message, email: bool) -> list[Target]:
    """Who a message goes to, now: `email` is whether the server has e-mail set up."""
    if message.kind in PERSONAL:
        if not email or message.recipient_id is None:
            return []
        return await _email_targets(session, [message.recipient_id])
    if message.kind == Kind.department_applied:
        if not email:
            return []
        admins = await session.exec(
            select(User.id)
            .join(UserRole, col(UserRole.user_id) == col(User.id))
            .where(col(User.department_id).is_(None), UserRole.role == Role.admin.value)
        )
        return await _email_targets(session, list(admins.all()))
    robots = await session.exec(
        select(RobotChannel.kind)
        .where(
            RobotChannel.department_id == message.department_id,
            col(RobotChannel.enabled).is_(True),
        )
        .order_by(RobotChannel.kind)
    )
    return [Target(kind, kind) for kind in robots.all()]


async def fan_out(session: AsyncSession, now: datetime, email: bool, limit: int = 200) -> int:
    """Make the deliveries of up to `limit` new messages; returns how many messages."""
    query = (
        select(Message)
        .where(col(Message.fanned_out).is_(False))
        .order_by(col(Message.created_at))
        .limit(limit)
    )
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    messages = (await session.exec(query)).all()
    conn = await session.connection()
    for message in messages:
        targets = await targets_of(session, message, email)
        if targets:
            await conn.execute(
                _insert_ignore(conn.dialect.name, DL),
                [
                    {
                        "department_id": message.department_id,
                        "id": new_id(),
                        "message_id": message.id,
                        "channel": target.channel,
                        "target": target.target,
                        "state": DeliveryState.queued.value,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "last_attempt_at": None,
                        "last_error": None,
                        "sent_at": None,
                        "created_at": now,
                        "resent_at": None,
                        "resent_by": None,
                    }
                    for target in targets
                ],
            )
        await conn.execute(
            update(M)
            .where(M.c.department_id == message.department_id, M.c.id == message.id)
            .values(fanned_out=True)
        )
    return len(messages)


# --- what the pages and the API show ---------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """A message and its deliveries, as coordinators and admins see them."""

    message: Message
    recipient_name: str | None
    deliveries: list[Delivery] = field(default_factory=list)


STATES = ("queued", "sent", "dead", "skipped", "none")


async def list_messages(
    session: AsyncSession,
    department_id: str | None,
    *,
    state: str | None,
    limit: int,
    after: str | None,
) -> tuple[list[Sent], str | None]:
    """Newest first; `department_id` None lists every department's (platform admins).
    `state` keeps the messages with a delivery in that state (`none`: with no delivery)."""
    conditions = []
    if department_id is not None:
        conditions.append(M.c.department_id == department_id)
    if after:
        conditions.append(M.c.id < after)
    if state is not None:
        if state not in STATES:
            raise InvalidInput("state", ", ".join(STATES[:-1]) + " or none")
        has = exists().where(DL.c.department_id == M.c.department_id, DL.c.message_id == M.c.id)
        if state == "none":
            conditions += [M.c.fanned_out.is_(True), ~has]
        else:
            conditions.append(has.where(DL.c.state == state))
    conn = await session.connection()
    rows = (
        await conn.execute(
            select(M, U.c.display_name)
            .select_from(M.outerjoin(U, U.c.id == M.c.recipient_id))
            .where(and_(True, *conditions))
            .order_by(M.c.id.desc())
            .limit(limit + 1)
        )
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    messages = [Message(**{c.name: row._mapping[c.name] for c in M.columns}) for row in rows]
    deliveries: dict[tuple[str, str], list[Delivery]] = {}
    if messages:
        found = await session.exec(
            select(Delivery)
            .where(col(Delivery.message_id).in_([m.id for m in messages]))
            .order_by(col(Delivery.channel), col(Delivery.id))
        )
        for delivery in found.all():
            deliveries.setdefault((delivery.department_id, delivery.message_id), []).append(
                delivery
            )
    page = [
        Sent(m, row.display_name, deliveries.get((m.department_id, m.id), []))
        for m, row in zip(messages, rows, strict=True)
    ]
    return page, (messages[-1].id if more and messages else None)


async def get_message(session: AsyncSession, department_id: str, message_id: str) -> Sent:
    message = await session.get(Message, (department_id, message_id))
    if message is None:
        raise NotFound(f"No message {message_id!r}.")
    name = None
    if message.recipient_id is not None:
        user = await session.get(User, message.recipient_id)
        name = user.display_name if user else None
    found = await session.exec(
        select(Delivery)
        .where(Delivery.department_id == department_id, Delivery.message_id == message_id)
        .order_by(col(Delivery.channel), col(Delivery.id))
    )
    return Sent(message, name, list(found.all()))


async def resend(
    session: AsyncSession, caller: Identity, department_id: str, message_id: str
) -> Sent:
    """Queue every delivery of the message again, now, each under its own id (a receiver
    that had it already can tell it is the same message); a message that had nobody to go
    to is fanned out again, in case the employee has given an address since."""
    sent = await get_message(session, department_id, message_id)
    now = utcnow()
    conn = await session.connection()
    if sent.deliveries:
        await conn.execute(
            update(DL)
            .where(DL.c.department_id == department_id, DL.c.message_id == message_id)
            .values(
                state=DeliveryState.queued.value,
                attempts=0,
                next_attempt_at=now,
                resent_at=now,
                resent_by=caller.user_id,
            )
        )
    else:
        await conn.execute(
            update(M)
            .where(M.c.department_id == department_id, M.c.id == message_id)
            .values(fanned_out=False)
        )
    session.expire_all()
    return await get_message(session, department_id, message_id)
