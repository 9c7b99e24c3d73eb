"""A department's village catalog: products with price, value, stock, photo and active flag.

Every change a coordinator makes is recorded field by field (who, when, old, new). Orders
snapshot the price, so changing it never alters an existing order.
"""

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.errors import InvalidField, NotFound
from catalog.models import Product, ProductChange, utcnow
from catalog.paging import Page, page_of

MAX_PRICE_POINTS = 10_000_000
MAX_VALUE_FEN = 100_000_000_00  # a hundred million yuan
MAX_STOCK = 1_000_000


@dataclass(frozen=True)
class ProductDetails:
    """Fields of a product; on update, None means "leave as it is"."""

    name: str | None = None
    description: str | None = None
    unit: str | None = None
    price_points: int | None = None
    value_fen: int | None = None
    stock: int | None = None
    active: bool | None = None


_TEXT_LIMITS = {"name": (1, 100), "description": (0, 2000), "unit": (1, 50)}
_INT_LIMITS = {
    "price_points": (1, MAX_PRICE_POINTS),
    "value_fen": (0, MAX_VALUE_FEN),
    "stock": (0, MAX_STOCK),
}


def _validated(details: ProductDetails) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f in fields(details):
        value = getattr(details, f.name)
        if value is None:
            continue
        if f.name in _TEXT_LIMITS:
            low, high = _TEXT_LIMITS[f.name]
            value = value.strip()
            if not low <= len(value) <= high:
                raise InvalidField(f.name, f"{low}-{high} characters")
        elif f.name in _INT_LIMITS:
            low, high = _INT_LIMITS[f.name]
            if isinstance(value, bool) or not low <= value <= high:
                raise InvalidField(f.name, f"a whole number, {low}-{high}")
        values[f.name] = value
    return values


async def create_product(
    session: AsyncSession, department_id: str, details: ProductDetails, actor_id: str
) -> Product:
    values = _validated(details)
    missing = [name for name in ("name", "unit", "price_points", "stock") if name not in values]
    if missing:
        raise InvalidField(missing[0], "required")
    product = Product(
        department_id=department_id,
        description=values.pop("description", ""),
        value_fen=values.pop("value_fen", 0),
        active=values.pop("active", True),
        created_by=actor_id,
        updated_by=actor_id,
        **values,
    )
    session.add(product)
    await session.flush()
    return product


async def get_product(
    session: AsyncSession, department_id: str, product_id: str, *, for_update: bool = False
) -> Product:
    product = await session.get(
        Product,
        (department_id, product_id),
        with_for_update=for_update,
        populate_existing=for_update,
    )
    if product is None:
        raise NotFound(f"No product {product_id!r}.")
    return product


async def update_product(
    session: AsyncSession,
    department_id: str,
    product_id: str,
    details: ProductDetails,
    actor_id: str,
    *,
    stock_delta: int | None = None,
    now: datetime | None = None,
) -> Product:
    """Change fields; `stock_delta` adds to (or takes from) the stock as it is under the row
    lock, so a delivery counted in never overwrites units that orders took meanwhile."""
    values = _validated(details)
    if stock_delta is not None and "stock" in values:
        raise InvalidField("stock_delta", "give either stock or stock_delta, not both")
    product = await get_product(session, department_id, product_id, for_update=True)
    if stock_delta is not None:
        stock = product.stock + stock_delta
        if not 0 <= stock <= MAX_STOCK:
            raise InvalidField(
                "stock_delta", f"the stock is {product.stock}; it must stay within 0-{MAX_STOCK}"
            )
        values["stock"] = stock
    await _apply_changes(session, product, values, actor_id, now or utcnow())
    return product


async def set_photo(
    session: AsyncSession, department_id: str, product_id: str, photo: str, actor_id: str
) -> tuple[Product, str | None]:
    """Point the product at a stored photo; returns it and the photo it replaced."""
    product = await get_product(session, department_id, product_id, for_update=True)
    previous = product.photo
    await _apply_changes(session, product, {"photo": photo}, actor_id, utcnow())
    return product, previous


async def _apply_changes(
    session: AsyncSession, product: Product, values: dict[str, Any], actor_id: str, now: datetime
) -> None:
    changes = []
    for name, new in values.items():
        old = getattr(product, name)
        if old == new:
            continue
        setattr(product, name, new)
        changes.append(
            ProductChange(
                department_id=product.department_id,
                product_id=product.id,
                field=name,
                old_value=_text(old),
                new_value=_text(new),
                changed_at=now,
                changed_by=actor_id,
            )
        )
    if not changes:
        return
    product.updated_at = now
    product.updated_by = actor_id
    session.add(product)
    session.add_all(changes)
    await session.flush()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def list_products(
    session: AsyncSession,
    department_id: str,
    *,
    active_only: bool,
    limit: int,
    after: str | None,
) -> Page[Product]:
    query = (
        select(Product)
        .where(Product.department_id == department_id)
        .order_by(col(Product.id))
        .limit(limit + 1)
    )
    if active_only:
        query = query.where(col(Product.active).is_(True))
    if after:
        query = query.where(col(Product.id) > after)
    return page_of((await session.exec(query)).all(), limit, lambda product: product.id)


async def list_changes(
    session: AsyncSession, department_id: str, product_id: str, *, limit: int, after: str | None
) -> Page[ProductChange]:
    await get_product(session, department_id, product_id)
    query = (
        select(ProductChange)
        .where(ProductChange.department_id == department_id, ProductChange.product_id == product_id)
        .order_by(col(ProductChange.id))
        .limit(limit + 1)
    )
    if after:
        query = query.where(col(ProductChange.id) > after)
    return page_of((await session.exec(query)).all(), limit, lambda change: change.id)
