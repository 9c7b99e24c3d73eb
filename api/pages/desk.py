"""The coordinator's pickup desk: scan a pickup QR (camera, USB scanner or typed) and hand
the order over exactly once; every scan answers in large type, green or red."""

from dataclasses import dataclass
from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Template
from litestar.security.jwt import Token

from api.auth import requires
from api.pages.forms import is_htmx, savepoint, text
from api.pages.rendering import page, translator
from api.pages.templating import local_time
from api.params import DB
from catalog.identity import Identity, load_identity
from catalog.models import Role
from exchange import pickup
from exchange.errors import (
    AlreadyPickedUp,
    ExchangeError,
    PickupTokenExpired,
    PickupTokenForeignDepartment,
    PickupTokenMalformed,
    PickupTokenRevoked,
    PickupTokenSignatureInvalid,
)
from exchange.models import Order

MAX_SCAN = 4096


@dataclass(frozen=True)
class ScanResult:
    ok: bool
    headline: str
    reason: str = ""
    order: Order | None = None
    person: str = ""


class PickupDesk(Controller):
    path = "/coord/pickup"
    guards = [requires(Role.coordinator)]
    include_in_schema = False

    @get("/")
    async def desk(self, request: Request[Identity, Token, Any]) -> Template:
        return page(
            request,
            "coord/pickup.html",
            title=translator(request).gettext("Pickup desk"),
            result=None,
        )

    @post("/")
    async def scan(self, request: Request[Identity, Token, Any], db: DB) -> Template:
        form = await request.form()
        scanned = text(form, "token", MAX_SCAN)
        result = await self._redeem(request, db, scanned)
        template = "coord/_scan_result.html" if is_htmx(request) else "coord/pickup.html"
        return page(
            request,
            template,
            status_code=200 if result.ok else 409,
            title=translator(request).gettext("Pickup desk"),
            result=result,
            scanned="",
        )

    async def _redeem(
        self, request: Request[Identity, Token, Any], db: DB, scanned: str
    ) -> ScanResult:
        _ = translator(request).gettext
        if not scanned:
            return ScanResult(
                False, _("Nothing scanned"), _("Scan the QR code or type the pickup code.")
            )
        settings = request.app.state.settings
        try:
            async with savepoint(db):
                order = await pickup.redeem(
                    db,
                    settings.keyring,
                    scanned,
                    coordinator_id=request.user.user_id,
                    coordinator_department_id=request.user.department_id,
                )
        except ExchangeError as error:
            return ScanResult(False, _("Do not hand over"), refusal(request, error))
        owner = await load_identity(db, order.user_id)
        return ScanResult(
            True,
            _("Hand over"),
            order=order,
            person=owner.display_name if owner else order.user_id,
        )


class PickupLink(Controller):
    """`/p/{token}`, what a pickup QR encodes: a phone's camera app opens it. A GET never
    hands anything over; a coordinator gets the desk with the code filled in, to confirm."""

    include_in_schema = False

    @get("/p/{token:str}")
    async def pickup_link(
        self, request: Request[Identity, Token, Any], token: FromPath[str]
    ) -> Template:
        _ = translator(request).gettext
        if request.user.has(Role.coordinator):
            return page(
                request, "coord/pickup.html", title=_("Pickup desk"), result=None, scanned=token
            )
        return page(
            request,
            "error.html",
            title=_("This is a pickup code"),
            message=_("Show it at your department's pickup desk; the coordinator there scans it."),
        )


def refusal(request: Request[Any, Any, Any], error: ExchangeError) -> str:
    """Why a scan was refused, in words the person at the desk can say to the employee."""
    _ = translator(request).gettext
    if isinstance(error, AlreadyPickedUp):
        return _("Already handed over at %(when)s by %(who)s.") % {
            "when": local_time(error.fulfilled_at),
            "who": error.fulfilled_by,
        }
    reasons: list[tuple[type[ExchangeError], str]] = [
        (PickupTokenExpired, _("The code has expired: the order was not picked up in time.")),
        (
            PickupTokenRevoked,
            _("The order was cancelled or has expired; this code is no longer valid."),
        ),
        (PickupTokenForeignDepartment, _("This code is for another department's pickup desk.")),
        (
            PickupTokenSignatureInvalid,
            _("This code is forged or altered: its signature does not match."),
        ),
        (PickupTokenMalformed, _("This is not a pickup code.")),
    ]
    for error_type, reason in reasons:
        if isinstance(error, error_type):
            return reason
    return str(error.detail)
