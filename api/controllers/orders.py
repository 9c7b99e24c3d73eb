"""Orders, their pickup QR codes, and redeeming pickup tokens at the desk."""

import asyncio
from datetime import timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.security.jwt import Token

from api.auth import member_department, requires
from api.controllers.dropoffs import REPLAYED_HEADER, IdempotencyKey
from api.controllers.refusals import refusals
from api.params import DB, After, Before, Conn, Limit, ListOrder
from catalog.identity import Identity
from catalog.models import Role
from catalog.paging import DEFAULT_LIMIT
from exchange import orders, pickup, qr
from exchange.models import Order, OrderStatus

# The order page shows the pickup QR at this many pixels per module (see README).
PICKUP_BOX_PX = 6


class OrderIn(msgspec.Struct):
    product_id: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    quantity: Annotated[int, msgspec.Meta(description=f"1-{orders.MAX_QUANTITY}")] = 1


class PickupIn(msgspec.Struct):
    token: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=4096,
            description="the pickup token, or the whole URL ({PUBLIC_BASE_URL}/p/{token}) "
            "a scanner read from the QR code",
        ),
    ]


class OrderOut(msgspec.Struct):
    id: str
    status: str
    points: int
    expires_at: str
    pickup_token: str | None  # only for the owner, while the order is reserved
    pickup_url: str | None
    product_id: str
    product_name: str
    product_unit: str
    quantity: int
    unit_price_points: int
    value_fen: int
    user_id: str
    hold_seq: int
    resolution_seq: int | None
    created_at: str
    resolved_at: str | None
    resolved_by: str | None

    @classmethod
    def of(cls, order: Order, request: Request[Identity, Any, Any]) -> "OrderOut":
        token = url = None
        if order.user_id == request.user.user_id and order.status == OrderStatus.reserved:
            settings = request.app.state.settings
            token = pickup.sign(settings.keyring, order)
            url = pickup.pickup_url(settings.public_base_url, token)
        return cls(
            id=order.id,
            status=order.status,
            points=order.points,
            expires_at=order.expires_at.isoformat(),
            pickup_token=token,
            pickup_url=url,
            product_id=order.product_id,
            product_name=order.product_name,
            product_unit=order.product_unit,
            quantity=order.quantity,
            unit_price_points=order.unit_price_points,
            value_fen=order.value_fen,
            user_id=order.user_id,
            hold_seq=order.hold_seq,
            resolution_seq=order.resolution_seq,
            created_at=order.created_at.isoformat(),
            resolved_at=order.resolved_at.isoformat() if order.resolved_at else None,
            resolved_by=order.resolved_by,
        )


class OrderPage(msgspec.Struct):
    """A page; `next` continues in the listing's order, `prev` goes back (with `before`)."""

    items: list[OrderOut]
    next: str | None
    prev: str | None = None


class OrderController(Controller):
    path = "/api"
    tags = ["Orders and pickup"]

    @post(
        "/orders",
        status_code=201,
        guards=[requires(Role.employee, Role.coordinator)],
        summary="Order a product from the village catalog for points",
        description="In one transaction takes the stock (never below zero) and holds the "
        "points (a pending debit). 409 when stock or available points are short; nothing is "
        "written then. The order expires unless picked up in time; its `pickup_token` is "
        f"shown as a QR code at the desk. A replay (same Idempotency-Key, same body) answers "
        f"with the original order and `{REPLAYED_HEADER}: true`.",
        responses=refusals(
            _400="Idempotency-Key header required",
            _403="Department not approved",
            _409="Not enough stock (with `stock`, `requested`); Not enough points (with "
            "`available`, `needed`); Product not available (inactive); Idempotency key reused "
            "with a different request (with `idempotency_key`)",
            _422="Invalid field: `quantity` out of range, or `product_id` not in the caller's "
            "department's catalog",
        ),
    )
    async def place(
        self,
        request: Request[Identity, Token, Any],
        conn: Conn,
        data: JSONBody[OrderIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[OrderOut]:
        settings = request.app.state.settings
        placed = await orders.place_order(
            conn,
            request.user,
            settings.keyring,
            product_id=data.product_id,
            quantity=data.quantity,
            idempotency_key=idempotency_key,
            expiry=timedelta(hours=settings.order_expiry_hours),
        )
        headers = {REPLAYED_HEADER: "true"} if placed.replayed else {}
        return Response(OrderOut.of(placed.order, request), status_code=201, headers=headers)

    @get(
        "/orders",
        summary="Orders: the caller's own; a coordinator's whole department with ?all=true",
    )
    async def list_orders(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        status: Annotated[
            str | None, QueryParameter(description="reserved, fulfilled, cancelled or expired")
        ] = None,
        all_members: Annotated[
            bool,
            QueryParameter(name="all", description="coordinators: every member's orders"),
        ] = False,
        limit: Limit = DEFAULT_LIMIT,
        after: After = None,
        before: Before = None,
        direction: ListOrder = "asc",
    ) -> OrderPage:
        caller = request.user
        department_wide = all_members and caller.has(Role.coordinator)
        page = await orders.list_orders(
            db,
            member_department(caller, "Orders"),
            user_id=None if department_wide else caller.user_id,
            status=status,
            limit=limit,
            after=after,
            before=before,
            newest_first=direction == "desc",
        )
        return OrderPage([OrderOut.of(o, request) for o in page.items], page.next, page.prev)

    @get("/orders/{order_id:str}")
    async def get_order(
        self, request: Request[Identity, Token, Any], db: DB, order_id: FromPath[str]
    ) -> OrderOut:
        return OrderOut.of(await orders.get_order(db, request.user, order_id), request)

    async def _pickup_url(
        self, request: Request[Identity, Token, Any], db: DB, order_id: str
    ) -> str:
        order = await orders.get_order(db, request.user, order_id)
        if order.user_id != request.user.user_id:
            raise NotFoundException(f"No order {order_id!r}.")
        if order.status != OrderStatus.reserved:
            raise NotFoundException(f"The order is {order.status}; it has no pickup code.")
        settings = request.app.state.settings
        return pickup.pickup_url(settings.public_base_url, pickup.sign(settings.keyring, order))

    @get(
        "/orders/{order_id:str}/qr.png",
        media_type="image/png",
        summary="The pickup QR (owner only), encoding {PUBLIC_BASE_URL}/p/{pickup_token}",
    )
    async def qr_png(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        order_id: FromPath[str],
        box: Annotated[
            int, QueryParameter(ge=qr.MIN_BOX_PX, le=qr.MAX_BOX_PX, description="pixels per module")
        ] = PICKUP_BOX_PX,
    ) -> Response[bytes]:
        url = await self._pickup_url(request, db, order_id)
        return Response(
            await asyncio.to_thread(qr.png, url, box),
            media_type="image/png",
            headers={"Cache-Control": "private, no-store"},
        )

    @get(
        "/orders/{order_id:str}/qr.svg",
        media_type="image/svg+xml",
        summary="The pickup QR as SVG (owner only)",
    )
    async def qr_svg(
        self, request: Request[Identity, Token, Any], db: DB, order_id: FromPath[str]
    ) -> Response[str]:
        url = await self._pickup_url(request, db, order_id)
        return Response(
            await asyncio.to_thread(qr.svg, url),
            media_type="image/svg+xml",
            headers={"Cache-Control": "private, no-store"},
        )

    @post(
        "/orders/{order_id:str}/cancel",
        status_code=200,
        summary="Cancel a reserved order (owner or coordinator): releases the hold and stock",
    )
    async def cancel(
        self, request: Request[Identity, Token, Any], conn: Conn, order_id: FromPath[str]
    ) -> OrderOut:
        return OrderOut.of(await orders.cancel_order(conn, request.user, order_id), request)

    @post(
        "/pickups",
        status_code=200,
        guards=[requires(Role.coordinator)],
        summary="Redeem a pickup token at the desk: the order becomes fulfilled, once",
        description="Verifies the Ed25519 signature (key by `kid`, see /api/keys), the expiry "
        "and the department. Refusals have distinct titles: `Pickup token malformed`, "
        "`Pickup token signature invalid` (forged or altered), `Pickup token expired`, "
        "`Pickup token revoked` (order cancelled or expired), `Pickup token of another "
        "department`, and `Already picked up` (409, with `fulfilled_at` and `fulfilled_by`).",
        responses=refusals(
            _400="Pickup token malformed; Pickup token signature invalid (forged or altered)",
            _403="Pickup token of another department",
            _409="Already picked up (with `fulfilled_at` and `fulfilled_by`)",
            _410="Pickup token expired; Pickup token revoked (order cancelled or expired)",
        ),
    )
    async def redeem(
        self, request: Request[Identity, Token, Any], conn: Conn, data: JSONBody[PickupIn]
    ) -> OrderOut:
        caller = request.user
        order = await pickup.redeem(
            conn,
            request.app.state.settings.keyring,
            data.token,
            coordinator_id=caller.user_id,
            coordinator_department_id=caller.department_id,
        )
        return OrderOut.of(order, request)
