"""Incidents of the offline pickup desk: a hand-over the ledger could not take.

A desk without network hands over on its own judgement (exchange/desk.py). When its queue
reaches the server the first event for the order stands in the ledger — an earlier hand-over,
the cancellation or the expiry — and the late hand-over becomes an incident naming both: the
desk, time and person of each. Nothing is posted twice and nothing is lost. A coordinator of
the department settles it: the item stays with the employee (`given`: written off, and the
unit taken from the stock, which still counts it) or came back (`recovered`).
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.engine import RowMapping
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog import products
from catalog.identity import Identity
from catalog.models import User, utcnow
from catalog.paging import Page, page_of
from catalog.products import ProductDetails
from exchange.access import require_desk
from exchange.errors import InvalidInput, InvalidTransition, NotFound
from exchange.models import (
    DeskIncident,
    DeskRedemption,
    IncidentKind,
    IncidentResolution,
    IncidentStatus,
    Order,
    OrderStatus,
)

MAX_NOTE = 300

I = DeskIncident.__table__  # noqa: E741
O = Order.__table__  # noqa: E741
R = DeskRedemption.__table__
U = User.__table__

KIND_BY_STATUS = {
    OrderStatus.fulfilled: IncidentKind.second_handover,
    OrderStatus.cancelled: IncidentKind.after_cancellation,
    OrderStatus.expired: IncidentKind.after_expiry,
}

_FIRST_REDEMPTION = (
    select(R.c.desk_id, R.c.desk_name, R.c.scanned_at)
    .where(
        R.c.department_id == bindparam("dep"),
        R.c.order_id == bindparam("order_id"),
        R.c.outcome == "fulfilled",
    )
    .limit(1)
)

_employee = U.alias("employee")
_first = U.alias("first_user")
_scanner = U.alias("scanner")
_resolver = U.alias("resolver")
_VIEW = (
    select(
        I,
        O.c.product_name,
        O.c.product_unit,
        O.c.quantity,
        O.c.user_id.label("employee_id"),
        _employee.c.display_name.label("employee_name"),
        _first.c.display_name.label("first_by_name"),
        _scanner.c.display_name.label("scanned_by_name"),
        _resolver.c.display_name.label("resolved_by_name"),
    )
    .join(O, and_(O.c.department_id == I.c.department_id, O.c.id == I.c.order_id))
    .join(_employee, _employee.c.id == O.c.user_id)
    .join(_scanner, _scanner.c.id == I.c.scanned_by)
    .outerjoin(_first, _first.c.id == I.c.first_by)
    .outerjoin(_resolver, _resolver.c.id == I.c.resolved_by)
)


@dataclass(frozen=True)
class IncidentView:
    """An incident with what a person settling it needs to read: the order and the names."""

    incident: DeskIncident
    product_name: str
    product_unit: str
    quantity: int
    employee_id: str
    employee_name: str
    first_by_name: str | None
    scanned_by_name: str
    resolved_by_name: str | None


def _view(row: RowMapping) -> IncidentView:
    incident = DeskIncident(**{column.name: row[column.name] for column in I.columns})
    return IncidentView(
        incident=incident,
        **{name: row[name] for name in IncidentView.__dataclass_fields__ if name != "incident"},
    )


async def record(
    session: AsyncSession,
    order: Order,
    *,
    desk_id: str,
    desk_name: str,
    scanned_at: datetime,
    scanned_by: str,
    now: datetime,
) -> DeskIncident | None:
    """The incident of a hand-over that came after the order was resolved; None while the
    order is still reserved (then the hand-over was refused for another reason)."""
    kind = KIND_BY_STATUS.get(OrderStatus(order.status))
    if kind is None or order.resolved_at is None:
        return None
    first_desk_id = first_desk_name = None
    first_at = order.resolved_at
    if kind == IncidentKind.second_handover:
        conn = await session.connection()
        params = {"dep": order.department_id, "order_id": order.id}
        if (first := (await conn.execute(_FIRST_REDEMPTION, params)).one_or_none()) is not None:
            # Handed over at a desk: its own clock says when the item left, not the sync.
            first_desk_id, first_desk_name, first_at = first
    incident = DeskIncident(
        department_id=order.department_id,
        kind=kind,
        order_id=order.id,
        first_desk_id=first_desk_id,
        first_desk_name=first_desk_name,
        first_at=first_at,
        first_by=order.resolved_by,
        desk_id=desk_id,
        desk_name=desk_name,
        scanned_at=scanned_at,
        scanned_by=scanned_by,
        created_at=now,
    )
    session.add(incident)
    await session.flush()
    return incident


async def list_incidents(
    session: AsyncSession,
    caller: Identity,
    department_id: str,
    *,
    status: str | None,
    limit: int,
    after: str | None,
) -> Page[IncidentView]:
    """The department's incidents, oldest first (the order to settle them in)."""
    require_desk(caller, department_id)
    query = _VIEW.where(I.c.department_id == department_id)
    if status is not None:
        if status not in IncidentStatus.__members__:
            raise InvalidInput("status", "open or resolved")
        query = query.where(I.c.status == status)
    if after:
        query = query.where(I.c.id > after)
    conn = await session.connection()
    rows = (await conn.execute(query.order_by(I.c.id).limit(limit + 1))).mappings().all()
    return page_of([_view(row) for row in rows], limit, lambda view: view.incident.id)


async def get_incident(
    session: AsyncSession, caller: Identity, department_id: str, incident_id: str
) -> IncidentView:
    require_desk(caller, department_id)
    conn = await session.connection()
    query = _VIEW.where(I.c.department_id == department_id, I.c.id == incident_id)
    row = (await conn.execute(query)).mappings().one_or_none()
    if row is None:
        raise NotFound(f"No incident {incident_id!r}.")
    return _view(row)


async def count_open(session: AsyncSession, department_id: str) -> int:
    conn = await session.connection()
    query = select(func.count()).where(
        I.c.department_id == department_id, I.c.status == IncidentStatus.open.value
    )
    return (await conn.execute(query)).scalar_one()


async def resolve(
    session: AsyncSession,
    caller: Identity,
    department_id: str,
    incident_id: str,
    *,
    resolution: str,
    note: str = "",
    now: datetime | None = None,
) -> IncidentView:
    """Settle an open incident once. `given` takes the order's units from the product's stock
    (as many as are left: the stock never goes below zero, and `stock_taken` says how many)."""
    require_desk(caller, department_id)
    if resolution not in IncidentResolution.__members__:
        raise InvalidInput("resolution", "given or recovered")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise InvalidInput("note", f"at most {MAX_NOTE} characters")
    now = now or utcnow()
    conn = await session.connection()
    locked = await conn.execute(
        select(I.c.status, I.c.order_id)
        .where(I.c.department_id == department_id, I.c.id == incident_id)
        .with_for_update()
    )
    row = locked.one_or_none()
    if row is None:
        raise NotFound(f"No incident {incident_id!r}.")
    if row.status != IncidentStatus.open:
        raise InvalidTransition("The incident is settled already.", row.status)
    stock_taken = None
    if resolution == IncidentResolution.given:
        stock_taken = await _take_from_stock(session, caller, department_id, row.order_id, now)
    await conn.execute(
        update(I)
        .where(I.c.department_id == department_id, I.c.id == incident_id)
        .values(
            status=IncidentStatus.resolved.value,
            resolution=resolution,
            note=note,
            stock_taken=stock_taken,
            resolved_at=now,
            resolved_by=caller.user_id,
        )
    )
    return await get_incident(session, caller, department_id, incident_id)


async def _take_from_stock(
    session: AsyncSession, caller: Identity, department_id: str, order_id: str, now: datetime
) -> int:
    """The item left the desk without the stock counting it out: count it out now, as a
    recorded product change by the coordinator who settled the incident."""
    order = await session.get(Order, (department_id, order_id))
    assert order is not None  # the incident's foreign key
    product = await products.get_product(session, department_id, order.product_id, for_update=True)
    taken = min(product.stock, order.quantity)
    if taken:
        await products.update_product(
            session,
            department_id,
            product.id,
            ProductDetails(),
            caller.user_id,
            stock_delta=-taken,
            now=now,
        )
    return taken
