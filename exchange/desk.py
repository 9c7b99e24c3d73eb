"""The pickup desk that keeps handing over when the network drops.

Online, the desk asks before it hands over (`hand_over(..., handed_over=False)`): a refusal
is shown in red and nothing is given. Offline, it judges a token by itself, from its copy of
the desk bundle (`desk_bundle`: the public keys, the department's open orders and what was
revoked) and its own record of what it handed over; it hands over and queues the redemption
with an Idempotency-Key. When the network is back, `sync` applies the queue, each redemption
exactly once (`hand_over(..., handed_over=True)`): the first redemption of an order stands in
the ledger, and a hand-over that comes after the order was handed over, cancelled or expired
becomes an incident (exchange/incidents.py), never a second posting.

What an offline desk cannot know: a cancellation made after its last copy of the bundle, and
another desk's hand-over of the same order. Incidents are how the server settles both.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.errors import CatalogError
from catalog.identity import Identity, load_identity
from catalog.models import Role, User, utcnow
from exchange import incidents, pickup
from exchange.access import require_desk
from exchange.errors import (
    AlreadyPickedUp,
    ExchangeError,
    InvalidInput,
    PickupTokenForeignDepartment,
    PickupTokenRevoked,
)
from exchange.idempotency import Claim, check_key, check_replay, fingerprint
from exchange.models import DeskIncident, DeskRedemption, Order, OrderStatus
from ledger.errors import LedgerError
from ledger.signing import PublicKeySet

MAX_BATCH = 100
MAX_DESK_ID = 64
MAX_DESK_NAME = 100
# A desk's clock may run this far ahead of the server's.
MAX_CLOCK_SKEW = timedelta(minutes=5)
# Each bundle repeats the changes of this long before it was made: a write stamped earlier
# but committed after the bundle was read is still seen by the next one.
CURSOR_OVERLAP = timedelta(minutes=5)
_CURSOR = re.compile(r"\d{1,19}")

R = DeskRedemption.__table__
O = Order.__table__  # noqa: E741
U = User.__table__

_CLAIM = Claim(R, select(*[bindparam(column.name, type_=column.type) for column in R.columns]))
_STORED = select(R).where(
    R.c.department_id == bindparam("dep"), R.c.idempotency_key == bindparam("key")
)
_TO_INCIDENT = (
    update(R)
    .where(R.c.department_id == bindparam("b_dep"), R.c.idempotency_key == bindparam("b_key"))
    .values(outcome="incident", incident_id=bindparam("incident_id"))
)


@dataclass(frozen=True)
class DeskItem:
    """One hand-over as a desk sends it."""

    idempotency_key: str | None
    token: str  # the token, or the whole URL the scanner read
    scanned_at: datetime  # by the desk's clock
    desk_id: str = ""
    desk_name: str = ""
    # The coordinator at the desk; None: whoever sends it. A coordinator may send the queue
    # a colleague left on the desk.
    scanned_by: str | None = None


class Outcome(StrEnum):
    fulfilled = "fulfilled"
    incident = "incident"
    refused = "refused"


@dataclass(frozen=True)
class Handover:
    idempotency_key: str | None
    outcome: Outcome
    order: Order | None = None
    incident: DeskIncident | None = None
    refusal: Exception | None = None  # a domain error, when refused
    replayed: bool = False  # the answer of an earlier request with the same key


async def hand_over(
    session: AsyncSession,
    keys: PublicKeySet,
    caller: Identity,
    department_id: str,
    item: DeskItem,
    *,
    handed_over: bool,
    now: datetime | None = None,
) -> Handover:
    """Redeem one scan of the department's desk, once per Idempotency-Key.

    `handed_over`: the desk gave the item already (offline), so a redemption the ledger
    cannot take becomes an incident; otherwise the desk is asking, and is refused. Every
    refusal raises, and the caller rolls back whatever this wrote.
    """
    require_desk(caller, department_id)
    now = now or utcnow()
    key = check_key(item.idempotency_key)
    token = pickup.token_from_scan(item.token)
    request_hash = fingerprint({"token": token})
    conn = await session.connection()
    if (stored := await _stored(conn, department_id, key)) is not None:
        return await _replay(session, key, stored, request_hash)
    _check_desk(item)
    scanned_by = await _scanner(session, caller, department_id, item.scanned_by)
    if item.scanned_at.tzinfo is None or item.scanned_at > now + MAX_CLOCK_SKEW:
        raise InvalidInput("scanned_at", "a time with its UTC offset, not in the future")
    # The token as of the scan: a hand-over made before it expired still counts.
    valid_at = min(item.scanned_at, now)
    claims = pickup.verify(keys, token, valid_at)
    if claims.department_id != department_id:
        raise PickupTokenForeignDepartment(
            "This token is for another department's order; this desk cannot redeem it."
        )
    order = await session.get(Order, (department_id, claims.order_id))
    if order is None or order.pickup_jti != claims.jti:
        raise PickupTokenRevoked("The token does not belong to a current order.")
    if item.scanned_at < order.created_at - MAX_CLOCK_SKEW:
        raise InvalidInput("scanned_at", "not before the order was placed")
    claim = {
        "department_id": department_id,
        "idempotency_key": key,
        "request_hash": request_hash,
        "order_id": order.id,
        "outcome": Outcome.fulfilled.value,  # until it turns out an incident, below
        "incident_id": None,
        "desk_id": item.desk_id,
        "desk_name": item.desk_name,
        "scanned_at": item.scanned_at,
        "scanned_by": scanned_by,
        "submitted_by": caller.user_id,
        "received_at": now,
    }
    if not await _CLAIM(conn, claim):
        # The same key sent twice at once: the other request committed first.
        stored = await _stored(conn, department_id, key)
        assert stored is not None
        return await _replay(session, key, stored, request_hash)
    try:
        async with session.begin_nested():
            fulfilled = await _redeem(
                session, keys, token, scanned_by, department_id, now, valid_at
            )
    except (AlreadyPickedUp, PickupTokenRevoked):
        if not handed_over:
            raise
        order = await session.get(Order, (department_id, order.id), populate_existing=True)
        assert order is not None
        incident = await incidents.record(
            session,
            order,
            desk_id=item.desk_id,
            desk_name=item.desk_name,
            scanned_at=item.scanned_at,
            scanned_by=scanned_by,
            now=now,
        )
        if incident is None:
            raise
        params = {"b_dep": department_id, "b_key": key, "incident_id": incident.id}
        await conn.execute(_TO_INCIDENT, params)
        return Handover(key, Outcome.incident, order=order, incident=incident)
    return Handover(key, Outcome.fulfilled, order=fulfilled)


async def _redeem(
    session: AsyncSession,
    keys: PublicKeySet,
    token: str,
    scanned_by: str,
    department_id: str,
    now: datetime,
    valid_at: datetime,
) -> Order:
    """The desk's one call of the domain's redemption."""
    return await pickup.redeem(
        session,
        keys,
        token,
        coordinator_id=scanned_by,
        coordinator_department_id=department_id,
        now=now,
        valid_at=valid_at,
    )


async def sync(
    session_factory: async_sessionmaker[AsyncSession],
    keys: PublicKeySet,
    caller: Identity,
    department_id: str,
    items: list[DeskItem],
    now: datetime | None = None,
) -> list[Handover]:
    """Apply a desk's queue of offline hand-overs, in order, each in a transaction of its
    own: a refused one leaves the others as they are, and a failure halfway leaves those
    before it applied, which a retry with the same keys answers without writing again."""
    require_desk(caller, department_id)
    if len(items) > MAX_BATCH:
        raise InvalidInput("items", f"at most {MAX_BATCH} per request")
    results = []
    for item in items:
        try:
            async with session_factory() as session, session.begin():
                handover = await hand_over(
                    session, keys, caller, department_id, item, handed_over=True, now=now
                )
        except (ExchangeError, CatalogError, LedgerError) as refusal:
            handover = Handover(item.idempotency_key, Outcome.refused, refusal=refusal)
        results.append(handover)
    return results


async def _stored(conn: AsyncConnection, department_id: str, key: str) -> DeskRedemption | None:
    row = (await conn.execute(_STORED, {"dep": department_id, "key": key})).one_or_none()
    return None if row is None else DeskRedemption(**row._mapping)


async def _replay(
    session: AsyncSession, key: str, stored: DeskRedemption, request_hash: str
) -> Handover:
    check_replay(key, stored.request_hash, request_hash)
    order = await session.get(Order, (stored.department_id, stored.order_id))
    incident = None
    if stored.incident_id is not None:
        incident = await session.get(DeskIncident, (stored.department_id, stored.incident_id))
    outcome = Outcome(stored.outcome)
    return Handover(key, outcome, order=order, incident=incident, replayed=True)


def _check_desk(item: DeskItem) -> None:
    if len(item.desk_id) > MAX_DESK_ID:
        raise InvalidInput("desk_id", f"at most {MAX_DESK_ID} characters")
    if len(item.desk_name) > MAX_DESK_NAME:
        raise InvalidInput("desk_name", f"at most {MAX_DESK_NAME} characters")


async def _scanner(
    session: AsyncSession, caller: Identity, department_id: str, scanned_by: str | None
) -> str:
    if scanned_by is None or scanned_by == caller.user_id:
        return caller.user_id
    person = await load_identity(session, scanned_by)
    if person is None or person.department_id != department_id or not person.has(Role.coordinator):
        raise InvalidInput("coordinator_id", "a coordinator of this department")
    return person.user_id


# --- The bundle a desk keeps for going offline --------------------------------------------


@dataclass(frozen=True)
class OpenOrder:
    """An order the desk may hand over, with what to hand and to whom."""

    order_id: str
    product_name: str
    product_unit: str
    quantity: int
    person: str  # the employee's display name
    jti: str  # the id in the order's pickup token
    expires_at: datetime


@dataclass(frozen=True)
class Revocation:
    """An order whose token no longer hands anything over: fulfilled, cancelled or expired."""

    order_id: str
    jti: str
    status: str
    at: datetime
    by: str | None  # who did it (display name); None for the expiry sweep
    expires_at: datetime  # after this the token is refused anyway: forget it


@dataclass(frozen=True)
class DeskBundle:
    department_id: str
    generated_at: datetime
    cursor: str  # `since` for the next bundle
    complete: bool  # all open orders (no `since`), or only those placed since the cursor
    keys: dict[str, Any]  # JWKS
    orders: list[OpenOrder]
    revocations: list[Revocation]


async def desk_bundle(
    session: AsyncSession,
    keys: PublicKeySet,
    caller: Identity,
    department_id: str,
    *,
    since: str | None = None,
    now: datetime | None = None,
) -> DeskBundle:
    """What a desk needs to hand over and to refuse without the server. Without `since`, all
    open orders and every revocation whose token has not expired; with the `cursor` of an
    earlier bundle, only what changed since it (a few minutes more: see CURSOR_OVERLAP)."""
    require_desk(caller, department_id)
    now = now or utcnow()
    changed_since = _since(since)
    conn = await session.connection()
    placed: list[ColumnElement[bool]] = []
    resolved: list[ColumnElement[bool]] = []
    if changed_since is not None:
        placed.append(O.c.created_at >= changed_since)
        resolved.append(O.c.resolved_at >= changed_since)
    employee = U.alias("employee")
    open_orders = await conn.execute(
        select(
            O.c.id,
            O.c.product_name,
            O.c.product_unit,
            O.c.quantity,
            employee.c.display_name,
            O.c.pickup_jti,
            O.c.expires_at,
        )
        .join(employee, employee.c.id == O.c.user_id)
        .where(
            O.c.department_id == department_id,
            O.c.status == OrderStatus.reserved.value,
            O.c.expires_at > now,
            *placed,
        )
        .order_by(O.c.id)
    )
    resolver = U.alias("resolver")
    revoked = await conn.execute(
        select(
            O.c.id,
            O.c.pickup_jti,
            O.c.status,
            O.c.resolved_at,
            resolver.c.display_name,
            O.c.expires_at,
        )
        .outerjoin(resolver, resolver.c.id == O.c.resolved_by)
        .where(
            O.c.department_id == department_id,
            O.c.status.in_(
                [
                    OrderStatus.fulfilled.value,
                    OrderStatus.cancelled.value,
                    OrderStatus.expired.value,
                ]
            ),
            O.c.expires_at > now,
            *resolved,
        )
        .order_by(O.c.id)
    )
    return DeskBundle(
        department_id=department_id,
        generated_at=now,
        cursor=str(int((now - CURSOR_OVERLAP).timestamp() * 1_000_000)),
        complete=changed_since is None,
        keys=keys.jwks(),
        orders=[OpenOrder(*row) for row in open_orders],
        revocations=[Revocation(*row) for row in revoked],
    )


def _since(cursor: str | None) -> datetime | None:
    if cursor is None:
        return None
    try:
        if _CURSOR.fullmatch(cursor):
            return datetime.fromtimestamp(int(cursor) / 1_000_000, tz=UTC)
    except (OverflowError, ValueError, OSError):  # past the years a datetime holds
        pass
    raise InvalidInput("since", "the cursor of an earlier desk bundle")
