"""The coordinator's pickup desk: scan a pickup QR (camera, USB scanner or typed) and hand
the order over exactly once; every scan answers in large type, green or red.

With JavaScript the desk keeps working with no network (api/static/js/pickup.js): a service
worker keeps the page and its files, a copy of the desk bundle lets it judge a token by
itself, and what it hands over meanwhile waits in IndexedDB until `/coord/pickup/sync` sends
it (exchange/desk.py). Without JavaScript it asks the server for every scan.
"""

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Template
from litestar.security.jwt import Token

from api import i18n
from api.auth import requires
from api.controllers.desk import BatchIn, BatchOut, sync_desk
from api.pages.forms import is_htmx, savepoint, text
from api.pages.incidents import kind_labels
from api.pages.rendering import page, translator
from api.pages.templating import local_time
from api.params import DB
from catalog.errors import CatalogError
from catalog.identity import Identity, load_identity
from catalog.models import Role, utcnow
from exchange import desk, incidents
from exchange.desk import DeskItem, Outcome
from exchange.errors import AlreadyPickedUp, ExchangeError
from exchange.idempotency import MAX_KEY_LENGTH
from exchange.models import Order
from ledger.errors import LedgerError

MAX_SCAN = 4096
STATIC = Path(__file__).parent.parent / "static"
# What the service worker keeps so that the desk opens with no network: the page itself
# (fetched by the worker as the signed-in coordinator) and every file the page loads.
DESK_FILES = [
    "/static/css/site.css",
    "/static/vendor/htmx.min.js",
    "/static/js/pickup.js",
    "/static/js/pickup-token.js",
    "/static/js/desk-store.js",
    "/static/js/ed25519.js",
    "/static/vendor/noble-ed25519.js",  # where the browser's WebCrypto lacks Ed25519
    "/static/vendor/qr-scanner.min.js",
    "/static/vendor/qr-scanner-worker.min.js",
]
WORKER = STATIC / "js" / "desk-sw.js"


@dataclass(frozen=True)
class ScanResult:
    ok: bool
    headline: str
    reason: str = ""
    order: Order | None = None
    person: str = ""


def reasons(_: Callable[[str], str]) -> dict[str, str]:
    """Why the desk refuses, by the name of the error: the same words whether the server
    refused (`refusal`) or the desk judged by itself while offline (pickup.js)."""
    return {
        "PickupTokenExpired": _("The code has expired: the order was not picked up in time."),
        "PickupTokenRevoked": _(
            "The order was cancelled or has expired; this code is no longer valid."
        ),
        "PickupTokenForeignDepartment": _("This code is for another department's pickup desk."),
        "PickupTokenSignatureInvalid": _(
            "This code is forged or altered: its signature does not match."
        ),
        "PickupTokenMalformed": _("This is not a pickup code."),
        "AlreadyPickedUp": _("Already handed over at %(when)s by %(who)s."),
        # Only the desk's own judgement, offline:
        "HandedOverHere": _("Already handed over at this desk at %(when)s."),
        "UnknownKey": _(
            "This desk does not know the key this code is signed with: it is forged, or the "
            "keys changed after the desk's last update. Check it when the network is back."
        ),
        "NoCopy": _("This desk has no offline copy yet: open it once with the network on."),
        "NotRecorded": _("This desk could not record the hand-over (its storage failed)."),
    }


def refusal(request: Request[Any, Any, Any], error: Exception) -> str:
    """Why a scan was refused, in words the person at the desk can say to the employee."""
    known = reasons(translator(request).gettext)
    if isinstance(error, AlreadyPickedUp):
        return known["AlreadyPickedUp"] % {
            "when": local_time(error.fulfilled_at),
            "who": error.fulfilled_by,
        }
    for error_type in type(error).__mro__:
        if error_type.__name__ in known:
            return known[error_type.__name__]
    return str(getattr(error, "detail", error))


def desk_config(request: Request[Identity, Any, Any]) -> dict[str, Any]:
    """What the desk's script needs besides the page: who is at the desk, and its words."""
    _ = translator(request).gettext
    return {
        "department_id": request.user.department_id,
        "coordinator": {"id": request.user.user_id, "name": request.user.display_name},
        "text": {
            "reasons": reasons(_),
            "kinds": kind_labels(_),
            "hand_over": _("Hand over"),
            "do_not_hand_over": _("Do not hand over"),
            "to": _("To: %(name)s"),
            "order_number": _("Order number"),
            "not_in_copy": _(
                "Ordered after this desk's last update: check the product on the employee's "
                "order page."
            ),
            "queued": _("Recorded on this desk; it is sent when the network is back."),
            "online": _("Online"),
            "offline": _("Offline"),
            "unreachable": _("Server unreachable"),
            "no_copy": _("No offline copy yet"),
            "copy_now": _("Offline copy: updated just now"),
            "copy_age": _("Offline copy: updated %(num)s min ago"),
            "queue": _("Waiting to be sent: %(num)s"),
            "sent": _("Sent to the server: %(num)s hand-overs."),
            "incident": _("%(order)s: %(kind)s. Recorded as an incident to settle."),
            "refused": _("%(order)s: not accepted by the server. %(reason)s"),
        },
    }


async def desk_page(
    request: Request[Identity, Token, Any],
    db: DB,
    result: ScanResult | None = None,
    *,
    status_code: int = 200,
    scanned: str = "",
) -> Template:
    return page(
        request,
        "coord/pickup.html",
        status_code=status_code,
        title=translator(request).gettext("Pickup desk"),
        result=result,
        scanned=scanned,
        open_incidents=await incidents.count_open(db, request.user.department_id or ""),
        desk_config=desk_config(request),
    )


class PickupDesk(Controller):
    path = "/coord/pickup"
    guards = [requires(Role.coordinator)]
    include_in_schema = False

    @get("/")
    async def desk(self, request: Request[Identity, Token, Any], db: DB) -> Template:
        return await desk_page(request, db)

    @post("/")
    async def scan(self, request: Request[Identity, Token, Any], db: DB) -> Template:
        form = await request.form()
        item = DeskItem(
            # Without JavaScript the form sends no key: this scan is its only try.
            idempotency_key=text(form, "idempotency_key", MAX_KEY_LENGTH)
            or secrets.token_urlsafe(16),
            token=text(form, "token", MAX_SCAN),
            scanned_at=utcnow(),
            desk_id=text(form, "desk_id", desk.MAX_DESK_ID),
            desk_name=text(form, "desk_name", desk.MAX_DESK_NAME),
        )
        result = await self._redeem(request, db, item)
        if is_htmx(request):
            return page(
                request,
                "coord/_scan_result.html",
                status_code=200 if result.ok else 409,
                result=result,
            )
        return await desk_page(request, db, result, status_code=200 if result.ok else 409)

    @post("/sync", status_code=200)
    async def sync(
        self, request: Request[Identity, Token, Any], data: JSONBody[BatchIn]
    ) -> BatchOut:
        """The desk's queue of offline hand-overs, sent by its script with the page's cookie
        (the API under /api takes bearer tokens only)."""
        return await sync_desk(request, request.user.department_id or "", data)

    async def _redeem(
        self, request: Request[Identity, Token, Any], db: DB, item: DeskItem
    ) -> ScanResult:
        _ = translator(request).gettext
        if not item.token:
            return ScanResult(
                False, _("Nothing scanned"), _("Scan the QR code or type the pickup code.")
            )
        try:
            async with savepoint(db):
                handover = await desk.hand_over(
                    db,
                    request.app.state.settings.keyring,
                    request.user,
                    request.user.department_id or "",
                    item,
                    handed_over=False,
                )
        except (ExchangeError, CatalogError, LedgerError) as error:
            return ScanResult(False, _("Do not hand over"), refusal(request, error))
        order = handover.order
        assert order is not None
        if handover.outcome == Outcome.incident:  # this desk's offline hand-over, sent again
            reason = kind_labels(_)[handover.incident.kind] if handover.incident else ""
            return ScanResult(False, _("Do not hand over"), reason, order=order)
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
        self, request: Request[Identity, Token, Any], db: DB, token: FromPath[str]
    ) -> Template:
        _ = translator(request).gettext
        if request.user.has(Role.coordinator):
            return await desk_page(request, db, scanned=token)
        return page(
            request,
            "error.html",
            title=_("This is a pickup code"),
            message=_("Show it at your department's pickup desk; the coordinator there scans it."),
        )


@cache
def _worker_script() -> bytes:
    """The service worker, headed by its file list and a version that changes whenever any of
    them (or the worker) does: a changed worker is what makes browsers fetch the files anew."""
    digest = hashlib.sha256(WORKER.read_bytes())
    for path in DESK_FILES:
        digest.update((STATIC / path.removeprefix("/static/")).read_bytes())
    head = (
        f"const VERSION = {json.dumps(digest.hexdigest()[:16])};\n"
        f"const FILES = {json.dumps(DESK_FILES)};\n"
    )
    return head.encode() + WORKER.read_bytes()


class DeskFiles(Controller):
    """The desk's service worker and web app manifest. Open to everyone: browsers fetch them
    without asking (the manifest without cookies), and they hold nothing private."""

    include_in_schema = False
    opt = {"exclude_from_auth": True}

    @get("/coord/desk-sw.js", media_type="text/javascript")
    async def worker(self) -> Response[bytes]:
        # Served from /coord/ rather than /static/ so that it may control /coord/pickup: a
        # worker's scope lies within the path it is served from.
        return Response(_worker_script(), headers={"Cache-Control": "no-cache"})

    @get("/coord/desk.webmanifest", media_type="application/manifest+json")
    async def manifest(
        self,
        lang: Annotated[str | None, QueryParameter(max_length=8)] = None,
    ) -> dict[str, Any]:
        language = i18n.supported(lang) or i18n.DEFAULT_LANGUAGE
        _ = i18n.translations(language).gettext
        return {
            "name": _("Cloud Exchange pickup desk"),
            "short_name": _("Pickup desk"),
            "lang": "zh-CN" if language == "zh" else "en",
            "start_url": "/coord/pickup",
            "scope": "/coord/pickup",
            "display": "standalone",
            "background_color": "#ffffff",
            "theme_color": "#0a6b3b",
            "icons": [
                {
                    "src": f"/static/icons/desk-{size}.png",
                    "sizes": f"{size}x{size}",
                    "type": "image/png",
                }
                for size in (192, 512)
            ],
        }
