"""Orders: reserve a product for points, pick it up with a signed token, or cancel it.

Placing an order is one transaction: the stock is taken with a guarded UPDATE (it never
goes below zero, and two buyers can never both get the last unit), then the points are
held with a pending debit user → redemption. Pickup posts the hold; cancellation and
expiry void it and return the stock.

Locks are taken in one order everywhere — user, order, product, ledger head — so that
writers never deadlock.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.identity import Identity
from catalog.models import Department, Product, utcnow
from catalog.paging import Page
from exchange.access import require_approved
from exchange.errors import (
    InvalidInput,
    InvalidTransition,
    ProductUnavailable,
    ShortPoints,
    ShortStock,
)
from exchange.idempotency import check_key, check_replay, fingerprint, lock_user
from exchange.models import Order, OrderStatus
from exchange.points import REDEMPTION, open_accounts, order_reference, user_account
from exchange.records import get_visible, list_records
from ledger import transfers
from ledger.errors import ExceedsCredits
from ledger.signing import KeyRing

MAX_QUANTITY = 100


@dataclass(frozen=True)
class Placed:
    order: Order
    replayed: bool


async def _existing(
    session: AsyncSession, department_id: str, user_id: str, key: str
) -> Order | None:
    found = await session.exec(
        select(Order).where(
            Order.department_id == department_id,
            Order.user_id == user_id,
            Order.idempotency_key == key,
        )
    )
    return found.first()


async def _claim(session: AsyncSession, order: Order) -> Order | None:
    """Insert the order, taking its idempotency key; None when that worked, else the order a
    concurrent request with the same key committed first."""
    try:
        async with session.begin_nested():
            session.add(order)
        return None
    except IntegrityError:
        # Only reachable if something bypassed the user lock: the unique index decides.
        original = await _existing(
            session, order.department_id, order.user_id, order.idempotency_key
        )
        if original is None:
            raise
        return original


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
    await lock_user(session, user_id)
    if (found := await _existing(session, department_id, user_id, key)) is not None:
        check_replay(key, found.request_hash, request_hash)
        return Placed(found, replayed=True)

    if not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidInput("quantity", f"a whole number, 1-{MAX_QUANTITY}")
    now = now or utcnow()
    product = await session.get(Product, (department_id, product_id))
    if product is None:
        # Another department's product is indistinguishable from a missing one.
        raise InvalidInput("product_id", "no such product in your department's catalog")
    if not product.active:
        raise ProductUnavailable(f"{product.name!r} is not offered any more.")

    order = Order(
        department_id=department_id,
        user_id=user_id,
        product_id=product_id,
        product_name=product.name,
        product_unit=product.unit,
        unit_price_points=product.price_points,
        unit_value_fen=product.value_fen,
        quantity=quantity,
        points=product.price_points * quantity,
        value_fen=product.value_fen * quantity,
        status=OrderStatus.reserved,
        hold_seq=0,
        pickup_jti=secrets.token_urlsafe(12),
        pickup_kid=keyring.active.kid,
        created_at=now,
        expires_at=(now + expiry).replace(microsecond=0),
        idempotency_key=key,
        request_hash=request_hash,
    )
    if (original := await _claim(session, order)) is not None:
        check_replay(key, original.request_hash, request_hash)
        return Placed(original, replayed=True)

    taken = await session.exec(
        update(Product)
        .where(
            col(Product.department_id) == department_id,
            col(Product.id) == product_id,
            col(Product.stock) >= quantity,
        )
        .values(stock=Product.stock - quantity)
        .returning(Product.price_points, Product.value_fen)
    )
    row = taken.first()
    if row is None:
        # The caller's transaction rolls back, and the claimed order with it.
        stock = (await session.exec(select(Product.stock).where(
            Product.department_id == department_id, Product.id == product_id
        ))).one()  # fmt: skip
        raise ShortStock(
            f"Only {stock} of {product.name!r} left; {quantity} requested.", stock, quantity
        )
    # Price and value as of the stock update, which locked the row: a price change that
    # committed since the read above is the one this order pays.
    unit_price, unit_value = row
    points = unit_price * quantity
    order.unit_price_points, order.unit_value_fen = unit_price, unit_value
    order.points, order.value_fen = points, unit_value * quantity

    await open_accounts(session, department_id, user_id)
    try:
        entry = await transfers.transfer(
            session,
            ledger_id=department_id,
            debit=user_account(user_id),
            credit=REDEMPTION,
            amount=points,
            idempotency_key=f"order:{order.id}:hold",
            actor=user_id,
            reference=order_reference(order.id),
            pending=True,
            now=now,
        )
    except ExceedsCredits as short:
        # The caller's transaction rolls back, returning the stock taken above.
        raise ShortPoints(
            f"{product.name!r} × {quantity} costs {points} points; you have {short.available} "
            "available.",
            short.available,
            points,
        ) from None
    order.hold_seq = entry.seq
    session.add(order)
    await session.flush()
    return Placed(order, replayed=False)


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
    await session.exec(
        update(Product)
        .where(
            col(Product.department_id) == order.department_id, col(Product.id) == order.product_id
        )
        .values(stock=Product.stock + order.quantity)
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
    session.add(order)
    await session.flush()
    return order


async def cancel_order(
    session: AsyncSession, caller: Identity, order_id: str, now: datetime | None = None
) -> Order:
    await get_order(session, caller, order_id)
    order = await session.get(
        Order, (caller.department_id, order_id), with_for_update=True, populate_existing=True
    )
    assert order is not None
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
    due = await session.exec(
        select(Order.id)
        .where(
            Order.department_id == department_id,
            Order.status == OrderStatus.reserved,
            col(Order.expires_at) <= now,
        )
        .order_by(col(Order.expires_at))
        .limit(limit)
    )
    expired = 0
    for order_id in due.all():
        order = await session.get(
            Order, (department_id, order_id), with_for_update=True, populate_existing=True
        )
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
        department_ids = list(
            (await session.exec(select(Department.id).order_by(col(Department.id)))).all()
        )
    total = 0
    for department_id in department_ids:
        while True:
            async with session_factory() as session, session.begin():
                expired = await expire_due(session, department_id, now, batch)
            total += expired
            if expired < batch:
                break
    return total
