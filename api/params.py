"""Handler parameter types every controller shares."""

from typing import Annotated, Literal

from litestar.di import NamedDependency
from litestar.params import QueryParameter
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.paging import DEFAULT_LIMIT, MAX_LIMIT

# Integer parameters stop here: exact in every JSON parser (a double holds it), and well
# within PostgreSQL's BIGINT, which every integer column fits in.
MAX_INTEGER = 2**53 - 1

# The request's unit of work: committed when the handler returns, rolled back when it raises.
DB = NamedDependency[AsyncSession]
# A pooled connection outside any transaction, for the hot writes: on PostgreSQL each is one
# server-side call that commits by itself, or it begins its own transaction
# (exchange/one_call.py).
Conn = NamedDependency[AsyncConnection]
Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="page size")]
After = Annotated[
    str | None, QueryParameter(max_length=64, description="cursor: the `next` of the last page")
]
Before = Annotated[
    str | None,
    QueryParameter(
        max_length=64, description="cursor: the `prev` of a page, to go back to the page before it"
    ),
]
ListOrder = Annotated[
    Literal["asc", "desc"],
    QueryParameter(name="order", description="asc: oldest first (the default); desc: newest first"),
]

__all__ = ["DB", "DEFAULT_LIMIT", "MAX_INTEGER", "After", "Before", "Limit", "ListOrder"]
