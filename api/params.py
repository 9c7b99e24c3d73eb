"""Handler parameter types every controller shares."""

from dataclasses import dataclass
from typing import Annotated, Literal

from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.paging import DEFAULT_LIMIT, MAX_LIMIT
from exchange import reports

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


@dataclass(frozen=True)
class PeriodQuery:
    """The period of a report or summary as asked: a campaign, or from and to."""

    campaign: str | None = None
    date_from: str | None = None
    date_to: str | None = None

    async def resolve(self, session: AsyncSession, department_id: str | None) -> reports.Period:
        return await reports.resolve_period(
            session,
            department_id,
            campaign=self.campaign,
            date_from=self.date_from,
            date_to=self.date_to,
        )


async def _period_query(
    campaign: Annotated[
        str | None, QueryParameter(max_length=64, description="a campaign's id")
    ] = None,
    date_from: Annotated[
        str | None,
        QueryParameter(
            name="from", max_length=32, description="first day, YYYY-MM-DD, Asia/Shanghai"
        ),
    ] = None,
    date_to: Annotated[
        str | None,
        QueryParameter(
            name="to", max_length=32, description="last day (inclusive), YYYY-MM-DD, Asia/Shanghai"
        ),
    ] = None,
) -> PeriodQuery:
    return PeriodQuery(campaign, date_from, date_to)


# The three period parameters, declared once: a handler takes `period: AskedPeriod` and its
# controller lists `dependencies={"period": PERIOD}`.
PERIOD = Provide(_period_query)
AskedPeriod = NamedDependency[PeriodQuery]

__all__ = [
    "DB",
    "DEFAULT_LIMIT",
    "MAX_INTEGER",
    "PERIOD",
    "After",
    "AskedPeriod",
    "Before",
    "Limit",
    "ListOrder",
    "PeriodQuery",
]
