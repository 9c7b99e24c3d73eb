"""Employee pages, phone first: points at a glance, and logging a drop-off from a poster."""

import secrets
from dataclasses import dataclass
from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Response, Template
from litestar.security.jwt import Token

from api.auth import requires
from api.pages.forms import savepoint, text
from api.pages.quantities import BadQuantity, parse_quantity, show_quantity
from api.pages.rendering import language_of, page, redirect, translator
from api.params import DB
from catalog import departments
from catalog.identity import Identity
from catalog.models import Role
from catalog.paging import MAX_LIMIT
from exchange import campaigns, dropoffs, orders, stations
from exchange.categories import CATEGORIES, Category, Unit
from exchange.errors import (
    CategoryNotRated,
    DailyCapReached,
    ExchangeError,
    IdempotencyKeyReused,
    InvalidInput,
    NoOpenCampaign,
    QuantityOutOfBounds,
    StationInactive,
    UnknownCategory,
)
from exchange.models import Dropoff, Order, Station
from exchange.points import points_of

RECENT = 8


@dataclass(frozen=True)
class RatedCategory:
    code: str
    name: str
    weighed: bool
    rate: int
    minimum: str
    maximum: str


def category_name(kind: Category, language: str) -> str:
    return kind.name_zh if language == "zh" else kind.name_en[:1].upper() + kind.name_en[1:]


def rated_categories(rates: list[Any], language: str) -> list[RatedCategory]:
    by_code = {rate.category: rate.points for rate in rates}
    return [
        RatedCategory(
            code=kind.code,
            name=category_name(kind, language),
            weighed=kind.unit is Unit.gram,
            rate=by_code[kind.code],
            minimum=show_quantity(kind.minimum, kind.unit is Unit.gram),
            maximum=show_quantity(kind.maximum, kind.unit is Unit.gram),
        )
        for kind in CATEGORIES.values()
        if kind.code in by_code
    ]


async def my_orders(db: DB, identity: Identity, count: int = MAX_LIMIT) -> list[Order]:
    """The employee's orders, newest first."""
    listing = await orders.list_orders(
        db,
        identity.department_id or "",
        user_id=identity.user_id,
        status=None,
        limit=count,
        after=None,
        newest_first=True,
    )
    return listing.items


async def recent_dropoffs(db: DB, identity: Identity, count: int) -> list[Dropoff]:
    listing = await dropoffs.list_dropoffs(
        db,
        identity.department_id or "",
        user_id=identity.user_id,
        status=None,
        limit=count,
        after=None,
        newest_first=True,
    )
    return listing.items


class EmployeePages(Controller):
    guards = [requires(Role.employee)]
    include_in_schema = False

    @get("/home")
    async def home(self, request: Request[Identity, Token, Any], db: DB) -> Template:
        identity = request.user
        department = await departments.get_department(db, identity, identity.department_id or "")
        points = await points_of(db, department.id, identity.user_id)
        return page(
            request,
            "employee/home.html",
            title=translator(request).gettext("My points"),
            department=department,
            points=points,
            dropoffs=await recent_dropoffs(db, identity, RECENT),
            orders=await my_orders(db, identity, RECENT),
            categories={
                code: category_name(c, language_of(request)) for code, c in CATEGORIES.items()
            },
        )

    async def _station_form(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        station: Station,
        *,
        status_code: int = 200,
        values: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
    ) -> Template:
        _ = translator(request).gettext
        department = await departments.get_department(db, request.user, station.department_id)
        try:
            campaign = await campaigns.open_campaign(db, station.department_id)
            kinds = rated_categories(
                await campaigns.rates_of(db, campaign.id), language_of(request)
            )
        except NoOpenCampaign:
            campaign, kinds = None, []
        values = values or {}
        if "category" not in values and kinds:
            values["category"] = kinds[0].code
        return page(
            request,
            "employee/station.html",
            status_code=status_code,
            title=station.name,
            station=station,
            department=department,
            campaign=campaign,
            kinds=kinds,
            values=values,
            errors=errors or {},
            # A new key per form shown: a double tap or a resend of this form logs once.
            idempotency_key=values.get("idempotency_key") or secrets.token_urlsafe(18),
        )

    @get("/s/{code:str}")
    async def station(
        self, request: Request[Identity, Token, Any], db: DB, code: FromPath[str]
    ) -> Template:
        station = await stations.visible_station(db, request.user, code)
        return await self._station_form(request, db, station)

    @post("/s/{code:str}")
    async def log_dropoff(
        self, request: Request[Identity, Token, Any], db: DB, code: FromPath[str]
    ) -> Response[Any]:
        _ = translator(request).gettext
        station = await stations.visible_station(db, request.user, code)
        form = await request.form()
        values = {
            "category": text(form, "category", 32),
            "quantity": text(form, "quantity", 20),
            "idempotency_key": text(form, "idempotency_key", 128),
        }
        errors: dict[str, str] = {}
        kind = CATEGORIES.get(values["category"])
        if kind is None:
            errors["category"] = _("Choose what you dropped off.")
        else:
            try:
                quantity = parse_quantity(values["quantity"], kind.unit is Unit.gram)
            except BadQuantity:
                errors["quantity"] = (
                    _("Enter the weight in kilograms, with at most one decimal, e.g. 2.5.")
                    if kind.unit is Unit.gram
                    else _("Enter how many, as a whole number.")
                )
        if not errors and kind is not None:
            try:
                async with savepoint(db):
                    logged = await dropoffs.log_dropoff(
                        db,
                        request.user,
                        station_code=station.code,
                        category_code=kind.code,
                        quantity=quantity,
                        idempotency_key=values["idempotency_key"],
                    )
            except ExchangeError as error:
                errors = dropoff_errors(request, error, kind)
                if isinstance(error, IdempotencyKeyReused):
                    values["idempotency_key"] = ""  # the changed form is a new drop-off
            else:
                return redirect(f"/dropoffs/{logged.dropoff.id}")
        return await self._station_form(
            request, db, station, status_code=422, values=values, errors=errors
        )

    @get("/dropoffs/{dropoff_id:str}")
    async def dropoff(
        self, request: Request[Identity, Token, Any], db: DB, dropoff_id: FromPath[str]
    ) -> Template:
        dropoff = await dropoffs.get_dropoff(db, request.user, dropoff_id)
        station = next(
            (
                s
                for s in await stations.all_stations(db, dropoff.department_id)
                if s.id == dropoff.station_id
            ),
            None,
        )
        kind = CATEGORIES[dropoff.category]
        points = await points_of(db, dropoff.department_id, request.user.user_id)
        return page(
            request,
            "employee/dropoff.html",
            title=translator(request).gettext("Drop-off recorded"),
            dropoff=dropoff,
            station=station,
            category=category_name(kind, language_of(request)),
            quantity=show_quantity(
                dropoff.confirmed_quantity or dropoff.quantity, kind.unit is Unit.gram
            ),
            weighed=kind.unit is Unit.gram,
            points=points,
        )


def dropoff_errors(
    request: Request[Any, Any, Any], error: ExchangeError, kind: Category
) -> dict[str, str]:
    """Where on the drop-off form an exchange refusal belongs, said in the user's language."""
    _ = translator(request).gettext
    weighed = kind.unit is Unit.gram
    if isinstance(error, QuantityOutOfBounds):
        low, high = show_quantity(error.minimum, weighed), show_quantity(error.maximum, weighed)
        message = (
            _("Between %(low)s and %(high)s kg, please.")
            if weighed
            else _("Between %(low)s and %(high)s items, please.")
        )
        return {"quantity": message % {"low": low, "high": high}}
    if isinstance(error, InvalidInput) and error.field == "quantity":
        return {"quantity": _("That is too little to earn a point; bring a little more.")}
    if isinstance(error, UnknownCategory | CategoryNotRated):
        return {"category": _("This campaign gives no points for that; choose another kind.")}
    if isinstance(error, DailyCapReached):
        return {
            "_form": _("That passes today's limit of %(cap)d points; %(remaining)d are left today.")
            % {"cap": error.daily_cap, "remaining": error.remaining}
        }
    if isinstance(error, NoOpenCampaign):
        return {
            "_form": _("No exchange campaign is open right now, so drop-offs cannot be recorded.")
        }
    if isinstance(error, StationInactive):
        return {"_form": _("This collection point is not in use any more.")}
    if isinstance(error, IdempotencyKeyReused):
        return {"_form": _("This form was already sent with different content; reload it.")}
    return {"_form": str(error.detail)}
