"""Employee pages for spending points: the village catalog, ordering with a confirmation
step, and the order page with its pickup QR."""

import asyncio
import secrets
from datetime import timedelta
from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Response, Template
from litestar.security.jwt import Token
from markupsafe import Markup

from api.auth import requires
from api.pages.employee import my_orders
from api.pages.forms import savepoint, text
from api.pages.quantities import whole_number
from api.pages.rendering import page, redirect, translator
from api.params import DB
from catalog import departments, products
from catalog.identity import Identity
from catalog.models import Product, Role
from catalog.paging import MAX_LIMIT
from exchange import orders, pickup, qr
from exchange.errors import (
    ExchangeError,
    IdempotencyKeyReused,
    InvalidInput,
    InvalidTransition,
    ProductUnavailable,
    ShortPoints,
    ShortStock,
)
from exchange.models import OrderStatus
from exchange.points import points_of


def parse_count(typed: str) -> int | None:
    count = whole_number(typed)
    return count if count is not None and 1 <= count <= orders.MAX_QUANTITY else None


class ShoppingPages(Controller):
    guards = [requires(Role.employee)]
    include_in_schema = False

    @get("/catalog")
    async def catalog(self, request: Request[Identity, Token, Any], db: DB) -> Template:
        identity = request.user
        department = await departments.get_department(db, identity, identity.department_id or "")
        listing = await products.list_products(
            db, department.id, active_only=True, limit=MAX_LIMIT, after=None
        )
        return page(
            request,
            "employee/catalog.html",
            title=translator(request).gettext("Products"),
            department=department,
            products=listing.items,
            points=await points_of(db, department.id, identity.user_id),
        )

    async def _product(
        self, request: Request[Identity, Token, Any], db: DB, product_id: str
    ) -> Product:
        product = await products.get_product(db, request.user.department_id or "", product_id)
        if not product.active:
            raise ProductUnavailable(f"{product.name!r} is not offered any more.")
        return product

    @get("/catalog/{product_id:str}")
    async def product(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        product_id: FromPath[str],
        quantity: FromQuery[str] = "1",
    ) -> Template:
        return await self._order_form(request, db, product_id, {"quantity": quantity}, {})

    async def _order_form(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        product_id: str,
        values: dict[str, str],
        errors: dict[str, str],
        status_code: int = 200,
    ) -> Template:
        product = await self._product(request, db, product_id)
        return page(
            request,
            "employee/product.html",
            status_code=status_code,
            title=product.name,
            product=product,
            points=await points_of(db, product.department_id, request.user.user_id),
            values=values,
            errors=errors,
            max_quantity=orders.MAX_QUANTITY,
        )

    @get("/catalog/{product_id:str}/confirm")
    async def confirm(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        product_id: FromPath[str],
        quantity: FromQuery[str] = "",
    ) -> Template:
        """The confirmation step: what it costs and what is left; nothing is written yet."""
        _ = translator(request).gettext
        count = parse_count(quantity)
        if count is None:
            errors = {
                "quantity": _("Enter a whole number from 1 to %(max)d.")
                % {"max": orders.MAX_QUANTITY}
            }
            return await self._order_form(
                request, db, product_id, {"quantity": quantity}, errors, 422
            )
        product = await self._product(request, db, product_id)
        points = await points_of(db, product.department_id, request.user.user_id)
        department = await departments.get_department(db, request.user, product.department_id)
        return page(
            request,
            "employee/confirm.html",
            title=_("Confirm your order"),
            product=product,
            department=department,
            quantity=count,
            cost=product.price_points * count,
            points=points,
            idempotency_key=secrets.token_urlsafe(18),
        )

    @post("/orders")
    async def place(self, request: Request[Identity, Token, Any], db: DB) -> Response[Any]:
        _ = translator(request).gettext
        form = await request.form()
        product_id = text(form, "product_id", 32)
        typed = text(form, "quantity", 10)
        count = parse_count(typed)
        if count is None:
            errors = {
                "quantity": _("Enter a whole number from 1 to %(max)d.")
                % {"max": orders.MAX_QUANTITY}
            }
            return await self._order_form(request, db, product_id, {"quantity": typed}, errors, 422)
        settings = request.app.state.settings
        try:
            async with savepoint(db):
                placed = await orders.place_order(
                    db,
                    request.user,
                    settings.keyring,
                    product_id=product_id,
                    quantity=count,
                    idempotency_key=text(form, "idempotency_key", 128),
                    expiry=timedelta(hours=settings.order_expiry_hours),
                )
        except (ShortStock, ShortPoints, InvalidInput, IdempotencyKeyReused) as error:
            return await self._order_form(
                request, db, product_id, {"quantity": typed}, order_errors(request, error), 409
            )
        return redirect(f"/orders/{placed.order.id}")

    @get("/orders")
    async def order_list(self, request: Request[Identity, Token, Any], db: DB) -> Template:
        return page(
            request,
            "employee/orders.html",
            title=translator(request).gettext("My orders"),
            orders=await my_orders(db, request.user),
        )

    @get("/orders/{order_id:str}")
    async def order(
        self, request: Request[Identity, Token, Any], db: DB, order_id: FromPath[str]
    ) -> Template:
        order = await orders.get_order(db, request.user, order_id)
        department = await departments.get_department(db, request.user, order.department_id)
        token = url = code = None
        if order.status == OrderStatus.reserved and order.user_id == request.user.user_id:
            settings = request.app.state.settings
            token = pickup.sign(settings.keyring, order)
            url = pickup.pickup_url(settings.public_base_url, token)
            # Our own SVG markup, built by the qrcode package from the URL: safe to inline.
            code = Markup(await asyncio.to_thread(qr.svg_element, url))
        return page(
            request,
            "employee/order.html",
            title=translator(request).gettext("Order"),
            order=order,
            department=department,
            token=token,
            pickup_url=url,
            qr_svg=code,
        )

    @post("/orders/{order_id:str}/cancel")
    async def cancel(
        self, request: Request[Identity, Token, Any], db: DB, order_id: FromPath[str]
    ) -> Response[Any]:
        try:
            async with savepoint(db):
                await orders.cancel_order(db, request.user, order_id)
        except InvalidTransition:
            pass  # already picked up, cancelled or expired: the order page says which
        return redirect(f"/orders/{order_id}")


def order_errors(request: Request[Any, Any, Any], error: ExchangeError) -> dict[str, str]:
    _ = translator(request).gettext
    if isinstance(error, ShortStock):
        return {"quantity": _("Only %(stock)d left.") % {"stock": error.stock}}
    if isinstance(error, ShortPoints):
        return {
            "_form": _("This costs %(needed)d points; you have %(available)d spendable.")
            % {"needed": error.needed, "available": error.available}
        }
    if isinstance(error, IdempotencyKeyReused):
        return {"_form": _("This form was already sent with different content; reload it.")}
    if isinstance(error, InvalidInput) and error.field == "quantity":
        return {
            "quantity": _("Enter a whole number from 1 to %(max)d.") % {"max": orders.MAX_QUANTITY}
        }
    return {"_form": _("This product is not available any more.")}
