"""Orders: reserve a product for points, pick it up with a signed token, or cancel it.

Placing an order is one transaction: the stock is taken with a guarded UPDATE (it never
goes below zero, and two buyers can never both get the last unit), then the points are
held with a pending debit user → redemption. Pickup posts the hold; cancellation and
expiry void it and return the stock.

Orders need no user lock: the unique index on the key decides idempotency, the guarded
UPDATE the stock, and the ledger (under its head lock) the balance. Locks are taken in one
order everywhere — order, product, ledger head — so that writers never deadlock.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.identity import Identity
from catalog.models import Department, Product, Role, User, new_id, utcnow
from catalog.paging import Page
from exchange.access import require_approved
from exchange.errors import (
    InvalidInput,
    InvalidTransition,
    NotFound,
    ProductUnavailable,
    ShortPoints,
    ShortStock,
)
from exchange.idempotency import Claim, check_key, check_replay, fingerprint
from exchange.models import Order, OrderStatus
from exchange.points import REDEMPTION, order_reference, transfer_for, user_account
from exchange.records import get_visible, list_records
from ledger import transfers
from ledger.errors import ExceedsCredits
from ledger.signing import KeyRing

MAX_QUANTITY = 100

O = Order.__table__  # noqa: E741
P = Product.__table__
U = User.__table__

# SQLAlchemy Core statements, built once and compiled once (see exchange/dropoffs.py).

# The order, claimed with its key before anything else, priced from the product as it is
# now; only for an active product of the caller's department. One round trip for the key
# check, the product read and the write. A concurrent request with the same key waits for
# this one to commit and then answers its order.
_CLAIM = Claim(
    O,
    select(
        *[
            {
                "product_name": P.c.name,
                "product_unit": P.c.unit,
                "unit_price_points": P.c.price_points,
                "unit_value_fen": P.c.value_fen,
                "points": P.c.price_points * bindparam("quantity"),
                "value_fen": P.c.value_fen * bindparam("quantity"),
            }.get(c.name, bindparam(c.name, type_=c.type))
            for c in O.columns
        ]
    ).where(
        P.c.department_id == bindparam("department_id"),
        P.c.id == bindparam("product_id"),
        P.c.active.is_(True),
    ),
)
_BY_KEY = select(O).where(
    O.c.department_id == bindparam("dep"),
    O.c.user_id == bindparam("uid"),
    O.c.idempotency_key == bindparam("key"),
)
_PRODUCT = select(P.c.name, P.c.active, P.c.stock).where(
    P.c.department_id == bindparam("dep"), P.c.id == bindparam("pid")
)
# The stock, taken with a guarded UPDATE: it never goes below zero, and two buyers can
# never both get the last unit. The price and value as of this update, which locks the
# row, are the ones the order pays.
_TAKE_STOCK = (
    update(P)
    .where(
        P.c.department_id == bindparam("dep"),
        P.c.id == bindparam("pid"),
        P.c.stock >= bindparam("quantity"),
    )
    .values(stock=P.c.stock - bindparam("quantity"))
    .returning(P.c.name, P.c.unit, P.c.price_points, P.c.value_fen)
)
_HELD = (
    update(O)
    .where(O.c.department_id == bindparam("b_dep"), O.c.id == bindparam("b_id"))
    .values(
        hold_seq=bindparam("hold_seq"),
        product_name=bindparam("product_name"),
        product_unit=bindparam("product_unit"),
        unit_price_points=bindparam("unit_price_points"),
        unit_value_fen=bindparam("unit_value_fen"),
        points=bindparam("points"),
        value_fen=bindparam("value_fen"),
    )
)
_BY_ID = select(O).where(O.c.department_id == bindparam("dep"), O.c.id == bindparam("id"))
_LOCK = _BY_ID.with_for_update()
_INSERT = O.insert()
_RETURN_STOCK = (
    update(P)
    .where(P.c.department_id == bindparam("dep"), P.c.id == bindparam("pid"))
    .values(stock=P.c.stock + bindparam("quantity"))
)
_RESOLVE = (
    update(O)
    .where(O.c.department_id == bindparam("b_dep"), O.c.id == bindparam("b_id"))
    .values(
        status=bindparam("status"),
        resolution_seq=bindparam("resolution_seq"),
        resolved_at=bindparam("resolved_at"),
        resolved_by=bindparam("resolved_by"),
    )
)


@dataclass(frozen=True)
class Placed:
    order: Order
    replayed: bool


def order_of(row: Any) -> Order:
    return Order(**{column.name: row._mapping[column.name] for column in O.columns})


async def locked_order(conn: AsyncConnection, department_id: str, order_id: str) -> Order | None:
    """The order with its row locked: concurrent resolutions of one order take turns."""
    row = (await conn.execute(_LOCK, {"dep": department_id, "id": order_id})).one_or_none()
    return None if row is None else order_of(row)


async def resolve(conn: AsyncConnection, order: Order) -> Order:
    """Store the order's resolution (status, resolving entry, when, by whom)."""
    await conn.execute(
        _RESOLVE,
        {
            "b_dep": order.department_id,
            "b_id": order.id,
            "status": order.status,
            "resolution_seq": order.resolution_seq,
            "resolved_at": order.resolved_at,
            "resolved_by": order.resolved_by,
        },
    )
    return order


async def place_order(
    session: AsyncSession,
    caller: Identity,
    keyring: KeyRing,
    *,
    product_id: str,
    quantity: int,
    idempotency_key: str | None,
    expiry: timedelta,
    now: datetime | None = None,
) -> Placed:
    key = check_key(idempotency_key)
    if caller.department_id is None:
        raise InvalidInput("product_id", "only members of a department order products")
    require_approved(caller)
    department_id, user_id = caller.department_id, caller.user_id
    request_hash = fingerprint({"product_id": product_id, "quantity": quantity})
    conn = await session.connection()
    now = now or utcnow()
    values = {
        "department_id": department_id,
        "id": new_id(),
        "user_id": user_id,
        "product_id": product_id,
        "quantity": quantity,
        "status": OrderStatus.reserved.value,
        "hold_seq": 0,
        "resolution_seq": None,
        "pickup_jti": secrets.token_urlsafe(12),
        "pickup_kid": keyring.active.kid,
        "created_at": now,
        "expires_at": (now + expiry).replace(microsecond=0),
        "resolved_at": None,
        "resolved_by": None,
        "idempotency_key": key,
        "request_hash": request_hash,
    }
    if not (1 <= quantity <= MAX_QUANTITY and await _CLAIM(conn, values)):
        # A retry of an earlier request gets its original answer; anything else is refused.
        params = {"dep": department_id, "uid": user_id, "key": key}
        if (found := (await conn.execute(_BY_KEY, params)).one_or_none()) is not None:
            order = order_of(found)
            check_replay(key, order.request_hash, request_hash)
            return Placed(order, replayed=True)
        if not 1 <= quantity <= MAX_QUANTITY:
            raise InvalidInput("quantity", f"a whole number, 1-{MAX_QUANTITY}")
        product = (
            await conn.execute(_PRODUCT, {"dep": department_id, "pid": product_id})
        ).one_or_none()
        if product is None:
            # Another department's product is indistinguishable from a missing one.
            raise InvalidInput("product_id", "no such product in your department's catalog")
        raise ProductUnavailable(f"{product.name!r} is not offered any more.")

    params = {"dep": department_id, "pid": product_id, "quantity": quantity}
    taken = (await conn.execute(_TAKE_STOCK, params)).one_or_none()
    if taken is None:
        # The caller's transaction rolls back, and the claimed order with it.
        product = (await conn.execute(_PRODUCT, params)).one()
        raise ShortStock(
            f"Only {product.stock} of {product.name!r} left; {quantity} requested.",
            product.stock,
            quantity,
        )
    points = taken.price_points * quantity
    try:
        entry = await transfer_for(
            session,
            department_id,
            user_id,
            debit=user_account(user_id),
            credit=REDEMPTION,
            amount=points,
            idempotency_key=f"order:{values['id']}:hold",
            actor=user_id,
            reference=order_reference(values["id"]),
            pending=True,
            now=now,
        )
    except ExceedsCredits as short:
        # The caller's transaction rolls back, returning the stock taken above.
        raise ShortPoints(
            f"{taken.name!r} × {quantity} costs {points} points; you have {short.available} "
            "available.",
            short.available,
            points,
        ) from None
    held = {
        "hold_seq": entry.seq,
        "product_name": taken.name,
        "product_unit": taken.unit,
        "unit_price_points": taken.price_points,
        "unit_value_fen": taken.value_fen,
        "points": points,
        "value_fen": taken.value_fen * quantity,
    }
    await conn.execute(_HELD, {"b_dep": department_id, "b_id": values["id"], **held})
    return Placed(Order(**{**values, **held}), replayed=False)


async def get_order(session: AsyncSession, caller: Identity, order_id: str) -> Order:
    return await get_visible(session, Order, caller, order_id, "order")


async def list_orders(
    session: AsyncSession,
    department_id: str,
    *,
    user_id: str | None,
    status: str | None,
    limit: int,
    after: str | None,
    before: str | None = None,
    newest_first: bool = False,
) -> Page[Order]:
    return await list_records(
        session,
        Order,
        OrderStatus,
        department_id,
        user_id=user_id,
        status=status,
        limit=limit,
        after=after,
        before=before,
        newest_first=newest_first,
    )


async def _release(
    session: AsyncSession,
    order: Order,
    status: OrderStatus,
    actor: str,
    resolved_by: str | None,
    now: datetime,
) -> Order:
    """Return the stock, void the hold, and close the order — in that lock order."""
    conn = await session.connection()
    await conn.execute(
        _RETURN_STOCK,
        {"dep": order.department_id, "pid": order.product_id, "quantity": order.quantity},
    )
    entry = await transfers.void_pending(
        session,
        ledger_id=order.department_id,
        pending_seq=order.hold_seq,
        idempotency_key=f"order:{order.id}:void",
        actor=actor,
        now=now,
    )
    order.status = status
    order.resolution_seq = entry.seq
    order.resolved_at = now
    order.resolved_by = resolved_by
    return await resolve(conn, order)


async def cancel_order(
    session: AsyncSession, caller: Identity, order_id: str, now: datetime | None = None
) -> Order:
    order = None
    if caller.department_id is not None:
        order = await locked_order(await session.connection(), caller.department_id, order_id)
    # The owner and their department's coordinators see an order; nobody else.
    if order is None or (order.user_id != caller.user_id and not caller.has(Role.coordinator)):
        raise NotFound(f"No order {order_id!r}.")
    if order.status != OrderStatus.reserved:
        raise InvalidTransition(
            f"The order is {order.status}; only reserved orders can be cancelled.", order.status
        )
    return await _release(
        session, order, OrderStatus.cancelled, caller.user_id, caller.user_id, now or utcnow()
    )


EXPIRY_ACTOR = "exchange:expiry"


async def expire_due(session: AsyncSession, department_id: str, now: datetime, limit: int) -> int:
    """Expire up to `limit` of a department's reserved orders past their expiry."""
    conn = await session.connection()
    due = await conn.execute(
        select(O.c.id)
        .where(
            O.c.department_id == department_id,
            O.c.status == OrderStatus.reserved.value,
            O.c.expires_at <= now,
        )
        .order_by(O.c.expires_at)
        .limit(limit)
    )
    expired = 0
    for order_id in due.scalars().all():
        order = await locked_order(conn, department_id, order_id)
        # Picked up or cancelled between the listing and the lock: nothing to do.
        if order is None or order.status != OrderStatus.reserved:
            continue
        await _release(session, order, OrderStatus.expired, EXPIRY_ACTOR, None, now)
        expired += 1
    return expired


async def sweep_expired_orders(
    session_factory: async_sessionmaker[AsyncSession],
    now: datetime | None = None,
    batch: int = 100,
) -> int:
    """Expire every reserved order past its expiry: void the hold, return the stock, mark it
    expired — each batch of a department in one transaction. Returns how many expired."""
    now = now or utcnow()
    async with session_factory() as session, session.begin():
        conn = await session.connection()
        departments = Department.__table__
        query = select(departments.c.id).order_by(departments.c.id)
        department_ids = list((await conn.execute(query)).scalars().all())
    total = 0
    for department_id in department_ids:
        while True:
            async with session_factory() as session, session.begin():
                expired = await expire_due(session, department_id, now, batch)
            total += expired
            if expired < batch:
                break
    return total
