"""Reading drop-offs and orders: the records an employee owns and their coordinators see."""

from enum import StrEnum
from typing import TypeVar

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.identity import Identity
from catalog.models import Role
from catalog.paging import Page, page_of
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
) -> Page[Record]:
    """A department's records, oldest first, optionally one user's or in one status."""
    query = (
        select(model)
        .where(model.department_id == department_id)
        .order_by(col(model.id))
        .limit(limit + 1)
    )
    if user_id is not None:
        query = query.where(model.user_id == user_id)
    if status is not None:
        if status not in statuses.__members__:
            *first, last = statuses.__members__
            raise InvalidInput("status", f"{', '.join(first)} or {last}")
        query = query.where(model.status == status)
    if after:
        query = query.where(col(model.id) > after)
    return page_of((await session.exec(query)).all(), limit, lambda record: record.id)
