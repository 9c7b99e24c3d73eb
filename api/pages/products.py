"""Coordinator pages: the village catalog — products, stock, prices, photos, history."""

import re
from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Response, Template
from litestar.security.jwt import Token

from api.auth import requires
from api.pages.forms import savepoint, text
from api.pages.quantities import BadQuantity, parse_yuan, show_yuan, whole_number
from api.pages.rendering import page, redirect, translator
from api.params import DB
from catalog import departments, photos, products
from catalog.errors import InvalidField
from catalog.identity import Identity
from catalog.models import Product, Role
from catalog.paging import MAX_LIMIT

FIELDS = ("name", "unit", "price_points", "value_yuan", "stock", "description")
STOCK_DELTA = re.compile(r"[+-]?[0-9]{1,7}")
MAX_UPLOAD = photos.MAX_PHOTO_BYTES + 64 * 1024


def values_of(product: Product) -> dict[str, str]:
    return {
        "name": product.name,
        "unit": product.unit,
        "price_points": str(product.price_points),
        "value_yuan": show_yuan(product.value_fen),
        "stock": str(product.stock),
        "description": product.description,
        "active": "yes" if product.active else "",
    }


class ProductPages(Controller):
    path = "/coord/products"
    guards = [requires(Role.coordinator)]
    include_in_schema = False

    @get("/")
    async def product_list(self, request: Request[Identity, Token, Any], db: DB) -> Template:
        return await self._list(request, db)

    async def _list(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        *,
        values: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        department_id = request.user.department_id or ""
        department = await departments.get_department(db, request.user, department_id)
        listing = await products.list_products(
            db, department_id, active_only=False, limit=MAX_LIMIT, after=None
        )
        return page(
            request,
            "coord/products.html",
            status_code=status_code,
            title=translator(request).gettext("Village catalog"),
            department=department,
            products=listing.items,
            values=values or {"active": "yes"},
            errors=errors or {},
            editing=False,
        )

    @post("/", request_max_body_size=MAX_UPLOAD)
    async def create(self, request: Request[Identity, Token, Any], db: DB) -> Response[Any]:
        form = await request.form()
        values = {name: text(form, name, 2000) for name in FIELDS}
        values["active"] = "yes"
        details, errors = self._details(request, values)
        photo = form.get("photo")
        if details is not None:
            try:
                async with savepoint(db):
                    await departments.get_active_department(
                        db, request.user, request.user.department_id or ""
                    )
                    product = await products.create_product(
                        db, request.user.department_id or "", details, request.user.user_id
                    )
                    await self._store_photo(request, db, product, photo)
            except InvalidField as error:
                errors[_form_field(error.field)] = product_rule(request, error.field)
            except photos.PhotoRejected as error:
                errors["photo"] = photo_rule(request, error)
            else:
                return redirect(f"/coord/products/{product.id}?saved=1")
        return await self._list(request, db, values=values, errors=errors, status_code=422)

    async def _store_photo(
        self, request: Request[Identity, Token, Any], db: DB, product: Product, upload: Any
    ) -> None:
        if upload is None or isinstance(upload, str) or not upload.filename:
            return
        content = await upload.read(photos.MAX_PHOTO_BYTES + 1)
        name = photos.store(request.app.state.settings.data_dir, content)
        await products.set_photo(db, product.department_id, product.id, name, request.user.user_id)

    def _details(
        self, request: Request[Any, Any, Any], values: dict[str, str], *, with_stock: bool = True
    ) -> tuple[products.ProductDetails | None, dict[str, str]]:
        """Turn typed text into numbers; the catalog checks the rules."""
        errors: dict[str, str] = {}
        numbers: dict[str, int] = {}
        for name in ("price_points", "stock") if with_stock else ("price_points",):
            number = whole_number(values[name])
            if number is None:
                errors[name] = product_rule(request, name)
            else:
                numbers[name] = number
        try:
            numbers["value_fen"] = parse_yuan(values["value_yuan"])
        except BadQuantity:
            errors["value_yuan"] = product_rule(request, "value_fen")
        if errors:
            return None, errors
        return (
            products.ProductDetails(
                name=values["name"],
                unit=values["unit"],
                description=values["description"],
                active=values.get("active") == "yes",
                **numbers,
            ),
            errors,
        )

    @get("/{product_id:str}")
    async def edit(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        product_id: FromPath[str],
        saved: FromQuery[str | None] = None,
    ) -> Template:
        product = await products.get_product(db, request.user.department_id or "", product_id)
        return await self._edit(request, db, product, values_of(product), {}, saved=bool(saved))

    async def _edit(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        product: Product,
        values: dict[str, str],
        errors: dict[str, str],
        *,
        saved: bool = False,
        status_code: int = 200,
    ) -> Template:
        changes = await products.list_changes(
            db, product.department_id, product.id, limit=MAX_LIMIT, after=None
        )
        return page(
            request,
            "coord/product.html",
            status_code=status_code,
            title=product.name,
            product=product,
            values=values,
            errors=errors,
            saved=saved,
            editing=True,
            changes=list(reversed(changes.items)),
        )

    @post("/{product_id:str}", request_max_body_size=MAX_UPLOAD)
    async def update(
        self, request: Request[Identity, Token, Any], db: DB, product_id: FromPath[str]
    ) -> Response[Any]:
        department_id = request.user.department_id or ""
        form = await request.form()
        values = {name: text(form, name, 2000) for name in FIELDS if name != "stock"}
        values["active"] = "yes" if text(form, "active", 5) == "yes" else ""
        values["stock_delta"] = text(form, "stock_delta", 12)
        details, errors = self._details(request, values, with_stock=False)
        delta = None
        if values["stock_delta"]:
            if not STOCK_DELTA.fullmatch(values["stock_delta"]):
                errors["stock_delta"] = product_rule(request, "stock_delta")
                details = None
            else:
                delta = int(values["stock_delta"])
        if details is not None:
            try:
                async with savepoint(db):
                    # A delivery is added to the stock as it is now, so units ordered while
                    # the coordinator had this form open are never written back.
                    product = await products.update_product(
                        db,
                        department_id,
                        product_id,
                        details,
                        request.user.user_id,
                        stock_delta=delta,
                    )
                    await self._store_photo(request, db, product, form.get("photo"))
            except InvalidField as error:
                errors[_form_field(error.field)] = product_rule(request, error.field)
            except photos.PhotoRejected as error:
                errors["photo"] = photo_rule(request, error)
            else:
                return redirect(f"/coord/products/{product_id}?saved=1")
        product = await products.get_product(db, department_id, product_id)
        return await self._edit(request, db, product, values, errors, status_code=422)


def _form_field(field: str) -> str:
    return "value_yuan" if field == "value_fen" else field


def product_rule(request: Request[Any, Any, Any], field: str) -> str:
    _ = translator(request).gettext
    return {
        "name": _("Enter a name of 1–100 characters."),
        "unit": _("Enter a unit of 1–50 characters, e.g. 5 kg bag."),
        "description": _("At most 2,000 characters."),
        "price_points": _("A whole number of points, at least 1."),
        "stock": _("A whole number, 0 or more."),
        "value_fen": _("An amount in yuan with at most two decimals, e.g. 45.50."),
        "stock_delta": _(
            "A whole number to add (a delivery) or, with a minus sign, to take away; "
            "the stock must stay 0 or more."
        ),
    }.get(field, _("Please check what you entered and try again."))


def photo_rule(request: Request[Any, Any, Any], error: photos.PhotoRejected) -> str:
    _ = translator(request).gettext
    if isinstance(error, photos.PhotoTooLarge):
        return _("The photo may be at most 2 MB.")
    return _("The photo must be a PNG, JPEG or WebP image.")
