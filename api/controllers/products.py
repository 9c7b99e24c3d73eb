"""The village catalog: products, their photos and their change history."""

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.datastructures import UploadFile
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody, MultipartBody
from litestar.response import File
from litestar.security.jwt import Token

from api.auth import member_department, requires
from api.controllers.media import ImageOperation
from api.params import DB, After, Limit
from catalog import departments, photos, products
from catalog.identity import Identity
from catalog.models import Product, ProductChange, Role
from catalog.paging import DEFAULT_LIMIT
from catalog.products import ProductDetails

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Description = Annotated[str, msgspec.Meta(max_length=2000)]
Unit = Annotated[str, msgspec.Meta(min_length=1, max_length=50, examples=["5 kg 袋"])]
PricePoints = Annotated[int, msgspec.Meta(description="points per unit, at least 1")]
ValueFen = Annotated[int, msgspec.Meta(description="value paid to the village per unit, in fen")]
Stock = Annotated[int, msgspec.Meta(description="units available, at least 0")]


class ProductIn(msgspec.Struct):
    name: Name
    unit: Unit
    price_points: PricePoints
    stock: Stock
    value_fen: ValueFen = 0
    description: Description = ""
    active: bool = True


class ProductPatch(msgspec.Struct):
    name: Name | None = None
    unit: Unit | None = None
    price_points: PricePoints | None = None
    stock: Stock | None = None
    stock_delta: (
        Annotated[
            int,
            msgspec.Meta(
                description="units to add (a delivery) or take away (damage), applied to the "
                "stock as it is at that moment; instead of `stock`"
            ),
        ]
        | None
    ) = None
    value_fen: ValueFen | None = None
    description: Description | None = None
    active: bool | None = None


class ProductOut(msgspec.Struct):
    id: str
    department_id: str
    name: str
    description: str
    unit: str
    price_points: int
    value_fen: int
    stock: int
    active: bool
    photo_url: str | None
    updated_at: str

    @classmethod
    def of(cls, p: Product) -> "ProductOut":
        return cls(
            id=p.id,
            department_id=p.department_id,
            name=p.name,
            description=p.description,
            unit=p.unit,
            price_points=p.price_points,
            value_fen=p.value_fen,
            stock=p.stock,
            active=p.active,
            photo_url=f"/api/products/{p.id}/photo" if p.photo else None,
            updated_at=p.updated_at.isoformat(),
        )


class ProductPage(msgspec.Struct):
    items: list[ProductOut]
    next: str | None


class ChangeOut(msgspec.Struct):
    id: str
    field: str
    old_value: str | None
    new_value: str | None
    changed_at: str
    changed_by: str

    @classmethod
    def of(cls, c: ProductChange) -> "ChangeOut":
        return cls(c.id, c.field, c.old_value, c.new_value, c.changed_at.isoformat(), c.changed_by)


class ChangePage(msgspec.Struct):
    items: list[ChangeOut]
    next: str | None


class PhotoForm(msgspec.Struct):
    file: UploadFile


COORDINATOR = [requires(Role.coordinator)]


class ProductController(Controller):
    path = "/api"
    tags = ["Village catalog"]

    @get(
        "/departments/{department_id:str}/products",
        summary="The department's village catalog",
        description="Members see the active products; coordinators also the inactive ones "
        "with `?include_inactive=true`.",
    )
    async def list_products(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        include_inactive: FromQuery[bool] = False,
        limit: Limit = DEFAULT_LIMIT,
        after: After = None,
    ) -> ProductPage:
        caller = request.user
        await departments.get_department(db, caller, department_id)
        page = await products.list_products(
            db,
            department_id,
            active_only=not (include_inactive and caller.has(Role.coordinator, Role.admin)),
            limit=limit,
            after=after,
        )
        return ProductPage([ProductOut.of(p) for p in page.items], page.next)

    @post("/departments/{department_id:str}/products", status_code=201, guards=COORDINATOR)
    async def create_product(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        data: JSONBody[ProductIn],
    ) -> ProductOut:
        await departments.get_active_department(db, request.user, department_id)
        product = await products.create_product(
            db,
            department_id,
            ProductDetails(**msgspec.structs.asdict(data)),
            request.user.user_id,
        )
        return ProductOut.of(product)

    @get("/products/{product_id:str}")
    async def get_product(
        self, request: Request[Identity, Token, Any], db: DB, product_id: FromPath[str]
    ) -> ProductOut:
        department_id = member_department(request.user, "Products")
        return ProductOut.of(await products.get_product(db, department_id, product_id))

    @patch(
        "/products/{product_id:str}",
        guards=COORDINATOR,
        summary="Change price, stock, active flag or descriptions; every change is recorded",
        description="A price change applies to new orders only: orders keep the price they "
        "were placed at.",
    )
    async def update_product(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        product_id: FromPath[str],
        data: JSONBody[ProductPatch],
    ) -> ProductOut:
        fields = msgspec.structs.asdict(data)
        stock_delta = fields.pop("stock_delta")
        product = await products.update_product(
            db,
            member_department(request.user, "Products"),
            product_id,
            ProductDetails(**fields),
            request.user.user_id,
            stock_delta=stock_delta,
        )
        return ProductOut.of(product)

    @get("/products/{product_id:str}/changes", guards=COORDINATOR, summary="Change history")
    async def list_changes(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        product_id: FromPath[str],
        limit: Limit = DEFAULT_LIMIT,
        after: After = None,
    ) -> ChangePage:
        page = await products.list_changes(
            db, member_department(request.user, "Products"), product_id, limit=limit, after=after
        )
        return ChangePage([ChangeOut.of(c) for c in page.items], page.next)

    @post(
        "/products/{product_id:str}/photo",
        status_code=200,
        guards=COORDINATOR,
        request_max_body_size=photos.MAX_PHOTO_BYTES + 64 * 1024,
        summary="Upload the product photo: PNG, JPEG or WebP, at most 2 MB",
        description="The type is decided by the file's content, not its name.",
    )
    async def upload_photo(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        product_id: FromPath[str],
        data: MultipartBody[PhotoForm],
    ) -> ProductOut:
        department_id = member_department(request.user, "Products")
        await products.get_product(db, department_id, product_id)
        data_dir = request.app.state.settings.data_dir
        content = await data.file.read(photos.MAX_PHOTO_BYTES + 1)
        name = photos.store(data_dir, content)
        product, _previous = await products.set_photo(
            db, department_id, product_id, name, request.user.user_id
        )
        # The previous file stays: the change history names it.
        return ProductOut.of(product)

    @get(
        "/products/{product_id:str}/photo",
        summary="The product photo: PNG or JPEG",
        operation_class=ImageOperation,
    )
    async def get_photo(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        product_id: FromPath[str],
    ) -> File:
        product = await products.get_product(
            db, member_department(request.user, "Products"), product_id
        )
        data_dir = request.app.state.settings.data_dir
        found = photos.open_photo(data_dir, product.photo) if product.photo else None
        if found is None:
            raise NotFoundException("This product has no photo.")
        path, media_type = found
        return File(
            path=path,
            media_type=media_type,
            content_disposition_type="inline",
            headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )
