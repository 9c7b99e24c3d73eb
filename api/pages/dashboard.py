"""Coordinator page: the department's numbers for today (Asia/Shanghai), from the report
functions (exchange/reports.py), which sum in SQL."""

from datetime import datetime
from typing import Any

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
from catalog.paging import MAX_LIMIT
from exchange import reports
from exchange.categories import CATEGORIES, Unit

LOW_STOCK = 3


class DashboardPage(Controller):
    path = "/coord/dashboard"
    guards = [requires(Role.coordinator)]
    include_in_schema = False

    @get("/")
    async def dashboard(self, request: Request[Identity, Token, Any], db: DB) -> Template:
        department_id = request.user.department_id or ""
        department = await departments.get_department(db, request.user, department_id)
        now = datetime.now(SHANGHAI)
        today = await reports.day_totals(db, request.user, department_id, now.date())
        catalog = await products.list_products(
            db, department_id, active_only=True, limit=MAX_LIMIT, after=None
        )
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
                    category_name(CATEGORIES[row.category], language),
                    show_quantity(row.quantity, CATEGORIES[row.category].unit is Unit.gram),
                    CATEGORIES[row.category].unit is Unit.gram,
                )
                for row in today.categories
            ],
            waiting=today.waiting,
            open_orders=today.open_orders,
            low_stock=[p for p in catalog.items if p.stock <= LOW_STOCK],
        )
