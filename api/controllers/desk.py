"""The pickup desk's API: the bundle a desk keeps for going offline, the hand-overs it queued
meanwhile, and the incidents those can become (see exchange/desk.py)."""

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.security.jwt import Token

from api.auth import requires
from api.controllers.refusals import refusals
from api.params import DB, After, Limit
from api.problems import domain_problem
from catalog.identity import Identity
from catalog.models import Role
from catalog.paging import DEFAULT_LIMIT
from exchange import desk, incidents
from exchange.desk import DeskBundle, DeskItem, Handover
from exchange.incidents import IncidentView


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class OpenOrderOut(msgspec.Struct):
    order_id: str
    product_name: str
    product_unit: str
    quantity: int
    person: str  # the employee's display name
    jti: str  # the `jti` of the order's pickup token
    expires_at: str


class RevocationOut(msgspec.Struct):
    order_id: str
    jti: str
    status: str  # fulfilled, cancelled or expired
    at: str
    by: str | None  # None: the expiry sweep
    expires_at: str  # the token's expiry: after it, forget this revocation


class DeskBundleOut(msgspec.Struct):
    department_id: str
    generated_at: str
    cursor: str
    complete: bool
    keys: dict[str, Any]
    orders: list[OpenOrderOut]
    revocations: list[RevocationOut]

    @classmethod
    def of(cls, bundle: DeskBundle) -> "DeskBundleOut":
        orders = [
            OpenOrderOut(
                order_id=o.order_id,
                product_name=o.product_name,
                product_unit=o.product_unit,
                quantity=o.quantity,
                person=o.person,
                jti=o.jti,
                expires_at=o.expires_at.isoformat(),
            )
            for o in bundle.orders
        ]
        revocations = [
            RevocationOut(
                order_id=r.order_id,
                jti=r.jti,
                status=r.status,
                at=r.at.isoformat(),
                by=r.by,
                expires_at=r.expires_at.isoformat(),
            )
            for r in bundle.revocations
        ]
        return cls(
            department_id=bundle.department_id,
            generated_at=bundle.generated_at.isoformat(),
            cursor=bundle.cursor,
            complete=bundle.complete,
            keys=bundle.keys,
            orders=orders,
            revocations=revocations,
        )


class DeskItemIn(msgspec.Struct):
    idempotency_key: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=128,
            description="chosen by the desk when it scanned; a retry sends the same one",
        ),
    ]
    token: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=4096,
            description="the pickup token, or the whole URL the scanner read",
        ),
    ]
    scanned_at: Annotated[
        datetime,
        msgspec.Meta(tz=True, description="when the desk handed the order over, by its clock"),
    ]
    coordinator_id: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=32,
                description="the coordinator who handed it over (a coordinator of the "
                "department); the caller when absent",
            ),
        ]
        | None
    ) = None


class BatchIn(msgspec.Struct):
    desk_id: Annotated[str, msgspec.Meta(min_length=1, max_length=desk.MAX_DESK_ID)]
    items: Annotated[list[DeskItemIn], msgspec.Meta(min_length=1, max_length=desk.MAX_BATCH)]
    desk_name: Annotated[str, msgspec.Meta(max_length=desk.MAX_DESK_NAME)] = ""

    def desk_items(self) -> list[DeskItem]:
        return [
            DeskItem(
                idempotency_key=item.idempotency_key,
                token=item.token,
                scanned_at=item.scanned_at,
                desk_id=self.desk_id,
                desk_name=self.desk_name,
                scanned_by=item.coordinator_id,
            )
            for item in self.items
        ]


class BatchItemOut(msgspec.Struct):
    idempotency_key: str | None
    outcome: Literal["fulfilled", "incident", "refused"]
    replayed: bool
    order_id: str | None
    incident_id: str | None
    incident_kind: Literal["second_handover", "after_cancellation", "after_expiry"] | None
    # For a refused item: the problem document a request of its own would have answered.
    problem: dict[str, Any] | None

    @classmethod
    def of(cls, handover: Handover) -> "BatchItemOut":
        problem = None
        if handover.refusal is not None:
            refused = domain_problem(handover.refusal)
            extra = refused.extra if isinstance(refused.extra, dict) else {}
            problem = {
                "status": refused.status_code,
                "title": refused.title,
                "detail": refused.detail,
                **extra,
            }
        return cls(
            idempotency_key=handover.idempotency_key,
            outcome=handover.outcome.value,  # type: ignore[arg-type]
            replayed=handover.replayed,
            order_id=handover.order.id if handover.order else None,
            incident_id=handover.incident.id if handover.incident else None,
            incident_kind=handover.incident.kind if handover.incident else None,  # type: ignore[arg-type]
            problem=problem,
        )


class BatchOut(msgspec.Struct):
    items: list[BatchItemOut]


class IncidentOut(msgspec.Struct):
    id: str
    kind: Literal["second_handover", "after_cancellation", "after_expiry"]
    status: Literal["open", "resolved"]
    order_id: str
    product_name: str
    product_unit: str
    quantity: int
    employee_id: str
    employee_name: str
    # What stands in the ledger: the first hand-over (its desk, when a desk sent it), or the
    # cancellation or expiry (first_by None: the expiry sweep).
    first_desk_id: str | None
    first_desk_name: str | None
    first_at: str
    first_by: str | None
    first_by_name: str | None
    # The hand-over that came second.
    desk_id: str
    desk_name: str
    scanned_at: str
    scanned_by: str
    scanned_by_name: str
    created_at: str
    resolution: Literal["given", "recovered"] | None
    note: str
    stock_taken: int | None
    resolved_at: str | None
    resolved_by: str | None
    resolved_by_name: str | None

    @classmethod
    def of(cls, view: IncidentView) -> "IncidentOut":
        i = view.incident
        return cls(
            id=i.id,
            kind=i.kind,  # type: ignore[arg-type]
            status=i.status,  # type: ignore[arg-type]
            order_id=i.order_id,
            product_name=view.product_name,
            product_unit=view.product_unit,
            quantity=view.quantity,
            employee_id=view.employee_id,
            employee_name=view.employee_name,
            first_desk_id=i.first_desk_id,
            first_desk_name=i.first_desk_name,
            first_at=i.first_at.isoformat(),
            first_by=i.first_by,
            first_by_name=view.first_by_name,
            desk_id=i.desk_id,
            desk_name=i.desk_name,
            scanned_at=i.scanned_at.isoformat(),
            scanned_by=i.scanned_by,
            scanned_by_name=view.scanned_by_name,
            created_at=i.created_at.isoformat(),
            resolution=i.resolution,  # type: ignore[arg-type]
            note=i.note,
            stock_taken=i.stock_taken,
            resolved_at=_time(i.resolved_at),
            resolved_by=i.resolved_by,
            resolved_by_name=view.resolved_by_name,
        )


class IncidentPage(msgspec.Struct):
    items: list[IncidentOut]
    next: str | None


class ResolveIn(msgspec.Struct):
    resolution: Literal["given", "recovered"]
    note: Annotated[str, msgspec.Meta(max_length=incidents.MAX_NOTE)] = ""


COORDINATOR = [requires(Role.coordinator)]


class DeskController(Controller):
    path = "/api/departments/{department_id:str}"
    tags = ["Pickup desk"]
    guards = COORDINATOR

    @get(
        "/desk-bundle",
        summary="What a pickup desk keeps to hand over and refuse without the network",
        description="The public keys (JWKS) that pickup tokens are signed with, the "
        "department's open orders (with the `jti` of each order's token, what to hand over and "
        "to whom) and the revocations: orders fulfilled, cancelled or expired whose tokens have "
        "not expired yet. Without `since`, everything (`complete: true`); with the `cursor` of "
        "an earlier bundle, only the orders placed and resolved since (a few minutes more, so "
        "nothing committed late is missed). For the department's coordinators.",
        responses=refusals(_422="Invalid field: `since` is not a cursor of this endpoint"),
    )
    async def bundle(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        since: Annotated[
            str | None,
            QueryParameter(max_length=32, description="the `cursor` of the desk's last bundle"),
        ] = None,
    ) -> Response[DeskBundleOut]:
        bundle = await desk.desk_bundle(
            db, request.app.state.settings.keyring, request.user, department_id, since=since
        )
        # Names of people: kept by the desk, never by a shared cache.
        return Response(DeskBundleOut.of(bundle), headers={"Cache-Control": "private, no-store"})

    @post(
        "/pickups:batch",
        status_code=200,
        summary="Hand-overs a desk made offline, each applied exactly once",
        description="Each item carries the Idempotency-Key the desk chose when it scanned, and "
        "is applied in a transaction of its own, in order. `fulfilled`: the order is handed "
        "over and its hold posted. `incident`: the desk handed the item over after the order "
        "was handed over elsewhere, cancelled or expired; the first event stands in the ledger "
        "and the incident (see …/incidents) awaits a coordinator. `refused`: nothing was "
        "written, and `problem` says why (a forged or altered token, another department's, "
        "…), exactly as a request of its own would have been answered. Sending an item again "
        "with its key answers the same outcome (`replayed: true`) and writes nothing; the same "
        "key with another token is refused.",
    )
    async def batch(
        self,
        request: Request[Identity, Token, Any],
        department_id: FromPath[str],
        data: JSONBody[BatchIn],
    ) -> BatchOut:
        return await sync_desk(request, department_id, data)

    @get("/incidents", summary="Offline hand-overs the ledger could not take, to settle")
    async def list_incidents(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        status: Annotated[
            str | None, QueryParameter(max_length=16, description="open or resolved")
        ] = None,
        limit: Limit = DEFAULT_LIMIT,
        after: After = None,
    ) -> IncidentPage:
        page = await incidents.list_incidents(
            db, request.user, department_id, status=status, limit=limit, after=after
        )
        return IncidentPage([IncidentOut.of(view) for view in page.items], page.next)

    @get("/incidents/{incident_id:str}", summary="One incident")
    async def get_incident(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        incident_id: FromPath[str],
    ) -> IncidentOut:
        view = await incidents.get_incident(db, request.user, department_id, incident_id)
        return IncidentOut.of(view)

    @post(
        "/incidents/{incident_id:str}/resolve",
        status_code=200,
        summary="Settle an incident: the item stays given, or was recovered",
        description="`given` takes the order's units from the product's stock (as many as are "
        "left; `stock_taken` says how many), as a recorded product change; `recovered` changes "
        "nothing else. An incident is settled once.",
        responses=refusals(_409="Not possible in the current status: settled already"),
    )
    async def resolve(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        incident_id: FromPath[str],
        data: JSONBody[ResolveIn],
    ) -> IncidentOut:
        view = await incidents.resolve(
            db,
            request.user,
            department_id,
            incident_id,
            resolution=data.resolution,
            note=data.note,
        )
        return IncidentOut.of(view)


async def sync_desk(
    request: Request[Identity, Any, Any], department_id: str, data: BatchIn
) -> BatchOut:
    """A desk's queue, from the API or the desk page (which signs in by cookie)."""
    results = await desk.sync(
        request.app.state.session_factory,
        request.app.state.settings.keyring,
        request.user,
        department_id,
        data.desk_items(),
    )
    return BatchOut([BatchItemOut.of(result) for result in results])
