"""Orders: reserve a product for points, pick it up with a signed token, or cancel it.

Placing an order is one transaction: the stock is taken with a guarded UPDATE (it never
goes below zero, and two buyers can never both get the last unit), then the points are
held with a pending debit user → redemption. Pickup posts the hold; cancellation and
expiry void it and return the stock.

Orders need no user lock: the unique index on the key decides idempotency, the guarded
UPDATE the stock, and the ledger (under its head lock) the balance. Locks are taken in one
order everywhere — order, product, ledger head — so that writers never deadlock.

On PostgreSQL placing, picking up and cancelling are each one call of a server-side function
(exchange/sql/writes.sql, see exchange/one_call.py); the Python path below is the same rules
for SQLite, for the sweep, and to answer what the function declines.
"""

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.identity import Identity
from catalog.models import Department, Product, Role, User, new_id, utcnow
from catalog.paging import Page
from exchange import one_call, points
from exchange.access import department_of, require_approved
from exchange.errors import (
    InvalidInput,
    InvalidTransition,
    NotFound,
    ProductUnavailable,
    ShortPoints,
    ShortStock,
)
from exchange.idempotency import Claim, check_key, fingerprint, replay_of
from exchange.models import Order, OrderStatus
from exchange.records import get_visible, list_records
from ledger import transfers
from ledger.db import Db, connection_of
from ledger.encoding import to_us
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
    O.c.department_id == bindparam("department_id"),
    O.c.user_id == bindparam("user_id"),
    O.c.idempotency_key == bindparam("key"),
)
_PRODUCT = select(P.c.name, P.c.active, P.c.stock).where(
    P.c.department_id == bindparam("department_id"), P.c.id == bindparam("product_id")
)
# The stock, taken with a guarded UPDATE: it never goes below zero, and two buyers can
# never both get the last unit. The price and value as of this update, which locks the
# row, are the ones the order pays.
_TAKE_STOCK = (
    update(P)
    .where(
        P.c.department_id == bindparam("of_department"),
        P.c.id == bindparam("of_product"),
        P.c.stock >= bindparam("quantity"),
    )
    .values(stock=P.c.stock - bindparam("quantity"))
    .returning(P.c.name, P.c.unit, P.c.price_points, P.c.value_fen)
)
_HELD = (
    update(O)
    .where(O.c.department_id == bindparam("of_department"), O.c.id == bindparam("of_order"))
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
_BY_ID = select(O).where(
    O.c.department_id == bindparam("department_id"), O.c.id == bindparam("order_id")
)
_LOCK = _BY_ID.with_for_update()
_INSERT = O.insert()
_RETURN_STOCK = (
    update(P)
    .where(P.c.department_id == bindparam("of_department"), P.c.id == bindparam("of_product"))
    .values(stock=P.c.stock + bindparam("quantity"))
)
# The server-side calls (exchange/sql/writes.sql).
_PLACE_CALL = "SELECT * FROM exchange_place_order(" + ", ".join(f"${i}" for i in range(1, 19)) + ")"
RESOLVE_CALL = "SELECT * FROM exchange_resolve_order($1, $2, $3, $4, $5, $6, $7, $8, $9)"

_RESOLVE = (
    update(O)
    .where(O.c.department_id == bindparam("of_department"), O.c.id == bindparam("of_order"))
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


def order_of(row: Any, *, to_change: bool = False) -> Order:
    """An order from a row of either driver (model_construct unless the caller will change
    it: see dropoffs._dropoff)."""
    mapping = row._mapping if hasattr(row, "_mapping") else row
    values = {column.name: mapping[column.name] for column in O.columns}
    return Order(**values) if to_change else Order.model_construct(**values)


async def locked_order(conn: AsyncConnection, department_id: str, order_id: str) -> Order | None:
    """The order with its row locked: concurrent resolutions of one order take turns."""
    params = {"department_id": department_id, "order_id": order_id}
    row = (await conn.execute(_LOCK, params)).one_or_none()
    return None if row is None else order_of(row, to_change=True)


async def resolve(conn: AsyncConnection, order: Order) -> Order:
    """Store the order's resolution (status, resolving entry, when, by whom)."""
    await conn.execute(
        _RESOLVE,
        {
            "of_department": order.department_id,
            "of_order": order.id,
            "status": order.status,
            "resolution_seq": order.resolution_seq,
            "resolved_at": order.resolved_at,
            "resolved_by": order.resolved_by,
        },
    )
    return order


@dataclass(frozen=True)
class _NewOrder:
    """An order request, checked as far as it can be without the database."""

    caller: Identity
    department_id: str
    key: str
    request_hash: str
    product_id: str
    quantity: int
    kid: str
    now: datetime
    expires_at: datetime
    id: str = field(default_factory=new_id)
    jti: str = field(default_factory=lambda: secrets.token_urlsafe(12))

    @property
    def ledger_key(self) -> str:
        return f"order:{self.id}:hold"


async def place_order(
    db: Db,
    caller: Identity,
    keyring: KeyRing,
    *,
    product_id: str,
    quantity: int,
    idempotency_key: str | None,
    expiry: timedelta,
    now: datetime | None = None,
) -> Placed:
    """Reserve ``quantity`` of a product for the caller and hold its points; a retry with the
    same key answers the original order (``replayed``)."""
    now = now or utcnow()
    request = _NewOrder(
        caller=caller,
        department_id=department_of(caller, "Orders"),
        key=check_key(idempotency_key),
        request_hash=fingerprint({"product_id": product_id, "quantity": quantity}),
        product_id=product_id,
        quantity=quantity,
        kid=keyring.active.kid,
        now=now,
        expires_at=(now + expiry).replace(microsecond=0),
    )
    require_approved(caller)
    if (row := await _place_in_one_call(db, request)) is not None:
        return Placed(order_of(row), replayed=False)
    async with one_call.transaction(db) as conn:
        return await _place(conn, request)


async def _place_in_one_call(db: Db, r: _NewOrder) -> Any:
    """The order as one server-side call, where it can be; None: take the Python path."""
    if not 1 <= r.quantity <= MAX_QUANTITY:
        return None
    spending = points.spending(r.caller.user_id)
    return await one_call.call(
        db, _PLACE_CALL, r.department_id, r.caller.user_id, r.id, r.key, r.request_hash,
        r.product_id, r.quantity, r.jti, r.kid, r.now, r.expires_at, to_us(r.now),
        spending["debit"], spending["credit"], *spending["open_with"], r.ledger_key,
        points.order_reference(r.id),
    )  # fmt: skip


async def _place(conn: AsyncConnection, r: _NewOrder) -> Placed:
    """The Python path: claim the key with the order's row, take the stock, hold the points."""
    user_id = r.caller.user_id
    values = {
        "department_id": r.department_id,
        "id": r.id,
        "user_id": user_id,
        "product_id": r.product_id,
        "quantity": r.quantity,
        "status": OrderStatus.reserved.value,
        "hold_seq": 0,
        "resolution_seq": None,
        "pickup_jti": r.jti,
        "pickup_kid": r.kid,
        "created_at": r.now,
        "expires_at": r.expires_at,
        "resolved_at": None,
        "resolved_by": None,
        "idempotency_key": r.key,
        "request_hash": r.request_hash,
    }
    if not (1 <= r.quantity <= MAX_QUANTITY and await _CLAIM(conn, values)):
        # A retry of an earlier request gets its original answer; anything else is refused.
        by_key = {"department_id": r.department_id, "user_id": user_id, "key": r.key}
        if (found := await replay_of(conn, _BY_KEY, by_key, r.key, r.request_hash)) is not None:
            return Placed(order_of(found), replayed=True)
        await _explain_unplaceable(conn, r)
    taken = await _take_stock(conn, r.department_id, r.product_id, r.quantity)
    cost = taken.price_points * r.quantity
    try:
        entry = await transfers.transfer(
            conn,
            ledger_id=r.department_id,
            **points.spending(user_id),
            amount=cost,
            idempotency_key=r.ledger_key,
            actor=user_id,
            reference=points.order_reference(r.id),
            pending=True,
            now=r.now,
        )
    except ExceedsCredits as short:
        # The transaction rolls back, returning the stock taken above.
        raise ShortPoints(
            f"{taken.name!r} × {r.quantity} costs {cost} points; you have {short.available} "
            "available.",
            short.available,
            cost,
        ) from None
    held = {
        "hold_seq": entry.seq,
        "product_name": taken.name,
        "product_unit": taken.unit,
        "unit_price_points": taken.price_points,
        "unit_value_fen": taken.value_fen,
        "points": cost,
        "value_fen": taken.value_fen * r.quantity,
    }
    await conn.execute(_HELD, {"of_department": r.department_id, "of_order": r.id, **held})
    return Placed(Order(**{**values, **held}), replayed=False)


async def _explain_unplaceable(conn: AsyncConnection, r: _NewOrder) -> NoReturn:
    if not 1 <= r.quantity <= MAX_QUANTITY:
        raise InvalidInput("quantity", f"a whole number, 1-{MAX_QUANTITY}")
    product = (
        await conn.execute(_PRODUCT, {"department_id": r.department_id, "product_id": r.product_id})
    ).one_or_none()
    if product is None:
        # Another department's product is indistinguishable from a missing one.
        raise InvalidInput("product_id", "no such product in your department's catalog")
    raise ProductUnavailable(f"{product.name!r} is not offered any more.")


async def _take_stock(
    conn: AsyncConnection, department_id: str, product_id: str, quantity: int
) -> Any:
    """The product's name, unit, price and value as of taking ``quantity`` of its stock."""
    params = {"of_department": department_id, "of_product": product_id, "quantity": quantity}
    taken = (await conn.execute(_TAKE_STOCK, params)).one_or_none()
    if taken is None:
        # The transaction rolls back, and the claimed order with it.
        params = {"department_id": department_id, "product_id": product_id}
        product = (await conn.execute(_PRODUCT, params)).one()
        raise ShortStock(
            f"Only {product.stock} of {product.name!r} left; {quantity} requested.",
            product.stock,
            quantity,
        )
    return taken


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
    conn: AsyncConnection,
    order: Order,
    status: OrderStatus,
    actor: str,
    resolved_by: str | None,
    now: datetime,
) -> Order:
    """Return the stock, void the hold, and close the order — in that lock order."""
    await conn.execute(
        _RETURN_STOCK,
        {
            "of_department": order.department_id,
            "of_product": order.product_id,
            "quantity": order.quantity,
        },
    )
    entry = await transfers.void_pending(
        conn,
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
    db: Db, caller: Identity, order_id: str, now: datetime | None = None
) -> Order:
    """Cancel a reserved order: its owner or one of their department's coordinators."""
    department_id = department_of(caller, "Orders")
    now = now or utcnow()
    owner = None if caller.has(Role.coordinator) else caller.user_id
    row = await one_call.call(
        db, RESOLVE_CALL, department_id, order_id, caller.user_id, transfers.VOID, None, owner,
        now, to_us(now), f"order:{order_id}:void",
    )  # fmt: skip
    if row is not None:
        return order_of(row)
    async with one_call.transaction(db) as conn:
        order = await locked_order(conn, department_id, order_id)
        # The owner and their department's coordinators see an order; nobody else.
        if order is None or (order.user_id != caller.user_id and not caller.has(Role.coordinator)):
            raise NotFound(f"No order {order_id!r}.")
        if order.status != OrderStatus.reserved:
            raise InvalidTransition(
                f"The order is {order.status}; only reserved orders can be cancelled.",
                order.status,
            )
        return await _release(
            conn, order, OrderStatus.cancelled, caller.user_id, caller.user_id, now
        )


EXPIRY_ACTOR = "exchange:expiry"


async def expire_due(db: Db, department_id: str, now: datetime, limit: int) -> int:
    """Expire up to `limit` of a department's reserved orders past their expiry."""
    conn = await connection_of(db)
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
        await _release(conn, order, OrderStatus.expired, EXPIRY_ACTOR, None, now)
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
