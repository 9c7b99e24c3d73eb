"""Coordinator page: the department's numbers for today (Asia/Shanghai).

It sums today's rows through the exchange's own listings. Ids start with their creation
time in milliseconds, so "created today" is a keyset cursor, not a scan of all history.
A report function in exchange/ would be the better home for these sums once one exists.
"""

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any, TypeVar

from litestar import Controller, Request, get
from litestar.response import Template
from litestar.security.jwt import Token

from api.auth import requires
from api.pages.employee import category_name
from api.pages.quantities import show_quantity
from api.pages.rendering import language_of, page, translator
from api.pages.templating import SHANGHAI
from api.params import DB
from catalog import departments, products
from catalog.identity import Identity
from catalog.models import Role
from catalog.paging import MAX_LIMIT, Page
from exchange import dropoffs, orders
from exchange.categories import CATEGORIES, Unit
from exchange.models import DropoffStatus, OrderStatus

LOW_STOCK = 3
T = TypeVar("T")


def id_cursor(at: datetime) -> str:
    """A keyset cursor just before every id created at or after `at` (see catalog.models.new_id)."""
    return f"{int(at.timestamp() * 1000):012x}"


async def every(fetch: Callable[[str | None], Awaitable[Page[T]]], after: str | None) -> list[T]:
    rows: list[T] = []
    while True:
        batch = await fetch(after)
        rows += batch.items
        if batch.next is None:
            return rows
        after = batch.next


@dataclass
class Today:
    dropoffs: int = 0
    participants: int = 0
    credited: int = 0
    pending_points: int = 0
    by_category: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    orders: int = 0
    order_points: int = 0
    value_fen: int = 0
    fulfilled: int = 0


class DashboardPage(Controller):
    path = "/coord/dashboard"
    guards = [requires(Role.coordinator)]
    include_in_schema = False

    @get("/")
    async def dashboard(self, request: Request[Identity, Token, Any], db: DB) -> Template:
        department_id = request.user.department_id or ""
        department = await departments.get_department(db, request.user, department_id)
        now = datetime.now(SHANGHAI)
        since = id_cursor(datetime.combine(now.date(), time(0), tzinfo=SHANGHAI))

        todays_dropoffs = await every(
            lambda after: dropoffs.list_dropoffs(
                db, department_id, user_id=None, status=None, limit=MAX_LIMIT, after=after
            ),
            since,
        )
        todays_orders = await every(
            lambda after: orders.list_orders(
                db, department_id, user_id=None, status=None, limit=MAX_LIMIT, after=after
            ),
            since,
        )
        waiting = await every(
            lambda after: dropoffs.list_dropoffs(
                db,
                department_id,
                user_id=None,
                status=DropoffStatus.pending,
                limit=MAX_LIMIT,
                after=after,
            ),
            None,
        )
        open_orders = await every(
            lambda after: orders.list_orders(
                db,
                department_id,
                user_id=None,
                status=OrderStatus.reserved,
                limit=MAX_LIMIT,
                after=after,
            ),
            None,
        )
        catalog = await products.list_products(
            db, department_id, active_only=True, limit=MAX_LIMIT, after=None
        )

        today = Today()
        for d in todays_dropoffs:
            if d.status == DropoffStatus.rejected:
                continue
            today.dropoffs += 1
            today.by_category[d.category] += d.confirmed_quantity or d.quantity
            if d.status == DropoffStatus.confirmed:
                today.credited += d.points
            else:
                today.pending_points += d.points
        today.participants = len(
            {d.user_id for d in todays_dropoffs if d.status != DropoffStatus.rejected}
        )
        for o in todays_orders:
            if o.status in (OrderStatus.cancelled, OrderStatus.expired):
                continue
            today.orders += 1
            today.order_points += o.points
            today.value_fen += o.value_fen
            today.fulfilled += o.status == OrderStatus.fulfilled

        language = language_of(request)
        return page(
            request,
            "coord/dashboard.html",
            title=translator(request).gettext("Today"),
            department=department,
            today=today,
            day=now.date().isoformat(),
            categories=[
                (
                    category_name(CATEGORIES[code], language),
                    show_quantity(amount, CATEGORIES[code].unit is Unit.gram),
                    CATEGORIES[code].unit is Unit.gram,
                )
                for code, amount in sorted(today.by_category.items())
            ],
            waiting=len(waiting),
            open_orders=len(open_orders),
            low_stock=[p for p in catalog.items if p.stock <= LOW_STOCK],
        )
