"""Drop-offs: employees log them, coordinators confirm or reject the pending ones."""

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.security.jwt import Token

from api.auth import member_department, requires
from api.controllers.refusals import refusals
from api.params import DB, After, Before, Conn, Limit, ListOrder
from catalog.identity import Identity
from catalog.models import Role
from catalog.paging import DEFAULT_LIMIT
from exchange import dropoffs
from exchange.categories import ROUNDING_RULE
from exchange.models import Dropoff, DropoffStatus

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        description="Required. A fresh random value (e.g. a UUID) per new request; resending "
        "the same request with the same key returns the original result instead of writing "
        "again. The same key with a different request is refused with 409.",
    ),
]
REPLAYED_HEADER = "Idempotent-Replayed"


class DropoffIn(msgspec.Struct):
    station_code: Annotated[str, msgspec.Meta(min_length=1, max_length=16)]
    category: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    quantity: Annotated[
        int,
        msgspec.Meta(
            description="grams for weighed categories (paper), a count for the others; "
            "see /api/categories for each category's bounds"
        ),
    ]
    unit: (
        Annotated[
            str,
            msgspec.Meta(
                description="optional check: `g` or `item`; refused if it is not the "
                "category's unit"
            ),
        ]
        | None
    ) = None


class ConfirmIn(msgspec.Struct):
    quantity: Annotated[int, msgspec.Meta(description="the weighed or counted quantity")] | None = (
        None
    )


class RejectIn(msgspec.Struct):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=dropoffs.MAX_REASON)]


class DropoffOut(msgspec.Struct):
    id: str
    status: str
    points: int
    spendable: bool  # whether the points are credited (posted) yet
    ledger_seq: int
    category: str
    unit: str
    quantity: int
    confirmed_quantity: int | None
    rate_points: int
    station_id: str
    campaign_id: str
    user_id: str
    created_at: str
    decided_at: str | None
    decided_by: str | None
    reject_reason: str | None
    resolution_seq: int | None
    adjustment_seq: int | None

    @classmethod
    def of(cls, d: Dropoff) -> "DropoffOut":
        return cls(
            id=d.id,
            status=d.status,
            points=d.points,
            spendable=d.status == DropoffStatus.confirmed and d.points > 0,
            ledger_seq=d.ledger_seq,
            category=d.category,
            unit=d.unit,
            quantity=d.quantity,
            confirmed_quantity=d.confirmed_quantity,
            rate_points=d.rate_points,
            station_id=d.station_id,
            campaign_id=d.campaign_id,
            user_id=d.user_id,
            created_at=d.created_at.isoformat(),
            decided_at=d.decided_at.isoformat() if d.decided_at else None,
            decided_by=d.decided_by,
            reject_reason=d.reject_reason,
            resolution_seq=d.resolution_seq,
            adjustment_seq=d.adjustment_seq,
        )


class DropoffPage(msgspec.Struct):
    """A page; `next` continues in the listing's order, `prev` goes back (with `before`)."""

    items: list[DropoffOut]
    next: str | None
    prev: str | None = None


COORDINATOR = [requires(Role.coordinator)]


class DropoffController(Controller):
    path = "/api/dropoffs"
    tags = ["Drop-offs"]

    @post(
        "/",
        status_code=201,
        guards=[requires(Role.employee, Role.coordinator)],
        summary="Log a drop-off at a collection point",
        description="Validates the station (exists, in use, the caller's department), the open "
        "campaign, the category, the quantity bounds and the daily cap, snapshots the rate and "
        "credits the points: at once under the `auto` policy, pending a coordinator under "
        f"`steward`. {ROUNDING_RULE} A replay of an earlier request (same Idempotency-Key, same "
        f"body) answers with the original drop-off and the header `{REPLAYED_HEADER}: true`.",
        responses=refusals(
            _400="Idempotency-Key header required",
            _403="Collection point of another department; Department not approved",
            _404="Not found (no collection point with that code)",
            _409="Idempotency key reused with a different request (with `idempotency_key`); "
            "Collection point inactive; No open campaign; Daily points cap reached (with "
            "`daily_cap` and `remaining`)",
            _422="Unknown category (with `category`); Category not on the rate card; Quantity "
            "out of bounds (with `minimum`, `maximum`, `unit`); Wrong unit for the category",
        ),
    )
    async def log(
        self,
        request: Request[Identity, Token, Any],
        conn: Conn,
        data: JSONBody[DropoffIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[DropoffOut]:
        logged = await dropoffs.log_dropoff(
            conn,
            request.user,
            station_code=data.station_code,
            category_code=data.category,
            quantity=data.quantity,
            unit=data.unit,
            idempotency_key=idempotency_key,
        )
        headers = {REPLAYED_HEADER: "true"} if logged.replayed else {}
        return Response(DropoffOut.of(logged.dropoff), status_code=201, headers=headers)

    @get(
        "/",
        summary="Drop-offs: the caller's own; a coordinator's whole department with ?all=true",
    )
    async def list_dropoffs(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        status: Annotated[
            str | None, QueryParameter(description="pending, confirmed or rejected")
        ] = None,
        all_members: Annotated[
            bool,
            QueryParameter(
                name="all",
                description="coordinators: every member's drop-offs, not only their own",
            ),
        ] = False,
        limit: Limit = DEFAULT_LIMIT,
        after: After = None,
        before: Before = None,
        direction: ListOrder = "asc",
    ) -> DropoffPage:
        caller = request.user
        department_id = member_department(caller, "Drop-offs")
        department_wide = caller.has(Role.coordinator) and (all_members or status == "pending")
        page = await dropoffs.list_dropoffs(
            db,
            department_id,
            user_id=None if department_wide else caller.user_id,
            status=status,
            limit=limit,
            after=after,
            before=before,
            newest_first=direction == "desc",
        )
        return DropoffPage([DropoffOut.of(d) for d in page.items], page.next, page.prev)

    @get("/{dropoff_id:str}")
    async def get_dropoff(
        self, request: Request[Identity, Token, Any], db: DB, dropoff_id: FromPath[str]
    ) -> DropoffOut:
        return DropoffOut.of(await dropoffs.get_dropoff(db, request.user, dropoff_id))

    @post(
        "/{dropoff_id:str}/confirm",
        status_code=200,
        guards=COORDINATOR,
        summary="Confirm a pending drop-off, optionally with the weighed or counted quantity",
        description="Posts the pending credit. A corrected quantity re-prices at the rate the "
        "drop-off was logged at: less posts part of the credit, more posts it and credits the "
        "difference, within the daily cap.",
    )
    async def confirm(
        self,
        request: Request[Identity, Token, Any],
        conn: Conn,
        dropoff_id: FromPath[str],
        data: JSONBody[ConfirmIn | None] = None,
    ) -> DropoffOut:
        dropoff = await dropoffs.confirm_dropoff(
            conn,
            member_department(request.user, "Drop-offs"),
            dropoff_id,
            request.user.user_id,
            quantity=data.quantity if data else None,
        )
        return DropoffOut.of(dropoff)

    @post(
        "/{dropoff_id:str}/reject",
        status_code=200,
        guards=COORDINATOR,
        summary="Reject a pending drop-off with a reason; voids its pending credit",
    )
    async def reject(
        self,
        request: Request[Identity, Token, Any],
        conn: Conn,
        dropoff_id: FromPath[str],
        data: JSONBody[RejectIn],
    ) -> DropoffOut:
        dropoff = await dropoffs.reject_dropoff(
            conn,
            member_department(request.user, "Drop-offs"),
            dropoff_id,
            request.user.user_id,
            reason=data.reason,
        )
        return DropoffOut.of(dropoff)
