"""The delivery worker: runs in the one process that holds the sweep lease (api/sweep.py).

A round fans out new messages, claims the deliveries that are due, renders and sends them
(outside any transaction), and records each outcome:

- claimed: `attempts + 1`, and `next_attempt_at` moved past the send timeout, so a worker that
  dies mid-send leaves the delivery to be tried again once that has passed — at least once,
  never lost. The receiver can tell a copy by the delivery's id, which every attempt carries;
- sent: done;
- failed, and trying later can help (the platform was busy, rate-limited or unreachable):
  queued again after an exponential back-off, `retry_base · 2^(attempts − 1)`, until the
  last attempt; then dead;
- failed for good (the robot's address or signature is wrong, the mail server refused the
  address): dead at once, with the reason. A coordinator fixes it and resends.

Every outcome is recorded only if the delivery is still the same attempt (`attempts`
unchanged), so a late answer never overwrites a newer attempt's.
"""

import asyncio
import functools
import gettext
import json
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.identity import Identity
from catalog.models import Department, Role, User, utcnow
from exchange import reports
from exchange.categories import Unit
from exchange.errors import NotFound
from exchange.models import Dropoff, Order
from exchange.notify import channels, mail, robots, texts
from exchange.notify.models import Delivery, DeliveryState, Kind, Message
from exchange.notify.outbox import fan_out
from exchange.notify.robots import Outcome
from exchange.notify.sealing import SealBroken, SecretBox

# The worker reads a department's figures as the platform does: read-only, every department.
READER = Identity(
    user_id="exchange:notify",
    username="exchange:notify",
    display_name="notifications",
    department_id=None,
    department_status=None,
    roles=frozenset({Role.auditor}),
)

# httpx logs every request's URL at INFO: a robot's URL carries its token.
logging.getLogger("httpx").setLevel(logging.WARNING)

DL = Delivery.__table__
MAX_ERROR = 500


@dataclass(frozen=True)
class DeliveryConfig:
    base_url: str  # links in messages lead here
    box: SecretBox
    translations: Callable[[str], gettext.NullTranslations]
    smtp: mail.SmtpSettings | None  # None: no e-mail
    send_timeout: float = 10.0
    max_attempts: int = 8
    retry_base: float = 30.0
    batch: int = 50
    concurrency: int = 8
    default_language: str = "zh"

    def backoff(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.retry_base * 2 ** (attempts - 1), 6 * 3600))

    @property
    def claim_for(self) -> timedelta:
        """Past this, a claimed delivery whose worker never reported back is due again: every
        send gives up at the timeout, so by then that worker is dead or done."""
        return timedelta(seconds=self.send_timeout * 3)


@dataclass(frozen=True)
class Work:
    """A claimed delivery, rendered and addressed: all the send needs, read before it."""

    department_id: str
    id: str
    attempts: int
    channel: str
    language: str
    text: texts.Text
    address: str = ""  # e-mail
    robot: channels.Robot | None = None
    done: Outcome | None = None  # decided without sending (nobody to send it to, ...)
    skip: bool = False


# --- what a message says ---------------------------------------------------------------------


def _link(base: str, message: Message) -> str:
    paths = {
        Kind.dropoff_confirmed: "/home",
        Kind.dropoff_rejected: "/home",
        Kind.order_ready: f"/orders/{message.reference}",
        Kind.order_expiring: f"/orders/{message.reference}",
        Kind.order_released: "/orders",
        Kind.points_expiring: "/catalog",
        Kind.daily_figures: "/coord/report",
        Kind.department_applied: "/admin/departments",
    }
    return base + paths[Kind(message.kind)]


async def facts_of(session: AsyncSession, message: Message, language: str) -> dict[str, Any]:
    """What the message's text names, read now (the rows it is about never change after
    the event, except the figures, which are the day's as of sending)."""
    kind = Kind(message.kind)
    department = await session.get(Department, message.department_id)
    assert department is not None
    if kind in (Kind.dropoff_confirmed, Kind.dropoff_rejected):
        dropoff = await session.get(Dropoff, (message.department_id, message.reference))
        assert dropoff is not None
        quantity = dropoff.confirmed_quantity or dropoff.quantity
        return {
            "what": texts.what_was_dropped(dropoff.category, quantity, language),
            "day": texts.local(dropoff.created_at, "%Y-%m-%d"),
            "points": dropoff.points,
            "reason": dropoff.reject_reason or "",
        }
    if kind in (Kind.order_ready, Kind.order_expiring, Kind.order_released):
        order = await session.get(Order, (message.department_id, message.reference))
        assert order is not None
        return {
            "product": order.product_name,
            "quantity": order.quantity,
            "points": order.points,
            "place": department.pickup_location,
            "until": texts.local(order.expires_at),
            "expired": order.status == "expired",
        }
    if kind == Kind.points_expiring:
        detail = json.loads(message.detail)
        return {
            "points": detail["points"],
            "campaign": detail["campaign"],
            "day": texts.local(detail["expires_at"], "%Y-%m-%d"),
            "time": texts.local(detail["expires_at"], "%H:%M"),
        }
    if kind == Kind.daily_figures:
        day = datetime.fromisoformat(message.reference).date()
        totals = await reports.day_totals(session, READER, message.department_id, day)
        paper = sum(c.quantity for c in totals.categories if c.unit == Unit.gram)
        return {
            "department": department.name,
            "day": message.reference,
            "dropoffs": totals.dropoffs,
            "confirmed": totals.confirmed,
            "pending": totals.pending,
            "participants": totals.participants,
            "paper_kg": texts.kilograms(paper),
            "items": sum(c.quantity for c in totals.categories if c.unit != Unit.gram),
            "issued": totals.points_issued,
            "orders": totals.orders,
            "picked_up": totals.picked_up,
            "spent": totals.points_spent,
            "waiting": totals.waiting,
            "open_orders": totals.open_orders,
        }
    return {
        "name": department.name,
        "village": department.village_name,
        "county": department.village_county,
        "province": department.village_province,
        "contact": department.contact_name,
        "phone": department.contact_phone,
    }


# --- a round ---------------------------------------------------------------------------------


async def _claim(session: AsyncSession, config: DeliveryConfig, now: datetime) -> list[Work]:
    query = (
        select(DL)
        .where(DL.c.state == DeliveryState.queued.value, DL.c.next_attempt_at <= now)
        .order_by(DL.c.next_attempt_at)
        .limit(config.batch)
    )
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = (await conn.execute(query)).all()
    work = []
    for row in rows:
        delivery = Delivery(**{**row._mapping, "attempts": row.attempts + 1})
        await conn.execute(
            update(DL)
            .where(DL.c.department_id == delivery.department_id, DL.c.id == delivery.id)
            .values(
                attempts=delivery.attempts,
                last_attempt_at=now,
                next_attempt_at=now + config.claim_for,
            )
        )
        work.append(await _prepare(session, config, delivery))
    return work


async def _prepare(session: AsyncSession, config: DeliveryConfig, delivery: Delivery) -> Work:
    message = await session.get(Message, (delivery.department_id, delivery.message_id))
    assert message is not None
    language = config.default_language
    address = ""
    robot = None
    if delivery.channel == "email":
        user = await session.get(User, delivery.target.removeprefix("user:"))
        if user is None or not user.is_active or not user.email or user.email_opt_out:
            reason = "the recipient opted out of e-mail or has no address any more"
            return _decided(delivery, language, Outcome(False, reason), skip=True)
        address, language = user.email, user.language or language
    else:
        try:
            robot = await channels.robot(
                session, delivery.department_id, delivery.channel, config.box
            )
        except SealBroken as broken:
            return _decided(delivery, language, Outcome(False, str(broken)))
        except NotFound as missing:  # the robot was removed since the message fanned out
            return _decided(delivery, language, Outcome(False, str(missing)))
    translations = config.translations(language)
    text = texts.render(
        message.kind,
        await facts_of(session, message, language),
        _link(config.base_url, message),
        translations,
    )
    return Work(
        delivery.department_id,
        delivery.id,
        delivery.attempts,
        delivery.channel,
        language,
        text,
        address=address,
        robot=robot,
    )


def _decided(delivery: Delivery, language: str, outcome: Outcome, skip: bool = False) -> Work:
    return Work(
        delivery.department_id,
        delivery.id,
        delivery.attempts,
        delivery.channel,
        language,
        texts.Text("", ""),
        done=outcome,
        skip=skip,
    )


async def _send(work: Work, config: DeliveryConfig, client: httpx.AsyncClient) -> Outcome:
    if work.done is not None:
        return work.done
    try:
        async with asyncio.timeout(config.send_timeout):
            if work.robot is not None:
                translations = config.translations(work.language)
                body = work.text.for_robot(work.id, translations)
                # Signed with the time of sending: a platform checks it against its clock.
                return await robots.post(
                    client, work.robot.kind, work.robot.url, work.robot.secret, body, utcnow()
                )
            if config.smtp is None:
                return Outcome(False, "e-mail is not set up on this server")
            message = mail.compose(
                config.smtp, work.address, work.text.subject, work.text.body, work.id,
                work.language, utcnow(),
            )  # fmt: skip
            return await mail.send(config.smtp, message)
    except TimeoutError:
        return Outcome(False, f"no answer within {config.send_timeout:g} s", retry=True)


async def _record(
    session: AsyncSession, config: DeliveryConfig, work: Work, outcome: Outcome, now: datetime
) -> str:
    if outcome.sent:
        values: dict[str, Any] = {"state": DeliveryState.sent.value, "sent_at": now}
        values["last_error"] = None
    elif work.skip:
        values = {"state": DeliveryState.skipped.value, "last_error": outcome.error}
    elif outcome.retry and work.attempts < config.max_attempts:
        values = {
            "state": DeliveryState.queued.value,
            "next_attempt_at": now + config.backoff(work.attempts),
            "last_error": outcome.error[:MAX_ERROR],
        }
    else:
        values = {"state": DeliveryState.dead.value, "last_error": outcome.error[:MAX_ERROR]}
    conn = await session.connection()
    await conn.execute(
        update(DL)
        .where(
            DL.c.department_id == work.department_id,
            DL.c.id == work.id,
            DL.c.attempts == work.attempts,
        )
        .values(**values)
    )
    return str(values["state"])


@dataclass
class Round:
    fanned_out: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    skipped: int = 0


async def deliver_round(
    session_factory: async_sessionmaker[AsyncSession],
    config: DeliveryConfig,
    client: httpx.AsyncClient,
    now: datetime | None = None,
) -> Round:
    """Fan out what is new, then send one batch of what is due."""
    now = now or utcnow()
    result = Round()
    async with session_factory() as session, session.begin():
        result.fanned_out = await fan_out(session, now, email=config.smtp is not None)
    async with session_factory() as session, session.begin():
        batch = await _claim(session, config, now)
    if not batch:
        return result
    limit = asyncio.Semaphore(config.concurrency)

    async def attempt(work: Work) -> None:
        async with limit:
            outcome = await _send(work, config, client)
        # Recorded as soon as it is known: a worker dying later resends only what was in flight.
        async with session_factory() as session, session.begin():
            state = await _record(session, config, work, outcome, now)
        if state == DeliveryState.queued:
            result.retried += 1
        else:
            setattr(result, state, getattr(result, state) + 1)
        if not outcome.sent:
            # A logger per round, bound to the logging set up now (not cached from before).
            structlog.get_logger().warning(
                "notification not delivered",
                delivery_id=work.id,
                channel=work.channel,
                attempt=work.attempts,
                error=outcome.error,
                now=state,
            )

    await asyncio.gather(*(attempt(work) for work in batch))
    return result


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~20 ms of CPU; one context serves every client of the process.
    return httpx.create_ssl_context()


def http_client(config: DeliveryConfig) -> httpx.AsyncClient:
    timeout = httpx.Timeout(config.send_timeout)
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, verify=_tls_context())


async def send_trial(
    config: DeliveryConfig, robot: channels.Robot, department: str, language: str
) -> Outcome:
    """Post a test message to a robot now (the channels page's Test button); nothing is
    stored. The caller holds no transaction meanwhile."""
    text = texts.trial_text(department, config.translations(language))
    async with http_client(config) as client:
        try:
            async with asyncio.timeout(config.send_timeout):
                return await robots.post(
                    client, robot.kind, robot.url, robot.secret, f"{text.subject}\n{text.body}",
                    utcnow(),
                )  # fmt: skip
        except TimeoutError:
            return Outcome(False, f"no answer within {config.send_timeout:g} s", retry=True)
