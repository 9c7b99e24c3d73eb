"""Reading drop-offs and orders: the records an employee owns and their coordinators see."""

from enum import StrEnum
from typing import TypeVar

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.identity import Identity
from catalog.models import Role
from catalog.paging import Page
from exchange.errors import InvalidInput, NotFound
from exchange.models import Dropoff, Order

Record = TypeVar("Record", Dropoff, Order)


async def get_visible(
    session: AsyncSession, model: type[Record], caller: Identity, record_id: str, label: str
) -> Record:
    """The owner and their department's coordinators see a record; nobody else."""
    record = None
    if caller.department_id is not None:
        record = await session.get(model, (caller.department_id, record_id))
    if record is None or (record.user_id != caller.user_id and not caller.has(Role.coordinator)):
        raise NotFound(f"No {label} {record_id!r}.")
    return record


async def list_records(
    session: AsyncSession,
    model: type[Record],
    statuses: type[StrEnum],
    department_id: str,
    *,
    user_id: str | None,
    status: str | None,
    limit: int,
    after: str | None,
    before: str | None = None,
    newest_first: bool = False,
) -> Page[Record]:
    """A department's records, optionally one user's or in one status, oldest first or newest
    first. Ids grow with creation time, so they are the keyset: `after` continues with the
    page following a page's `next`, `before` goes back to the page preceding its `prev`."""
    if after and before:
        raise InvalidInput("before", "give either after or before, not both")
    query = select(model).where(model.department_id == department_id)
    if user_id is not None:
        query = query.where(model.user_id == user_id)
    if status is not None:
        if status not in statuses.__members__:
            *first, last = statuses.__members__
            raise InvalidInput("status", f"{', '.join(first)} or {last}")
        query = query.where(model.status == status)
    key = col(model.id)
    # Going back reads the other way from the cursor, then turns the page around.
    backwards = before is not None
    descending = newest_first != backwards
    cursor = before if backwards else after
    if cursor:
        query = query.where(key < cursor if descending else key > cursor)
    query = query.order_by(key.desc() if descending else key).limit(limit + 1)
    rows = list((await session.exec(query)).all())
    more = len(rows) > limit
    items = rows[:limit]
    if backwards:
        items.reverse()
        return Page(
            items=items,
            next=items[-1].id if items else before,
            prev=items[0].id if more and items else None,
        )
    return Page(
        items=items,
        next=items[-1].id if more and items else None,
        prev=items[0].id if after and items else None,
    )
