"""`/coord/incidents`: offline hand-overs the ledger could not take, for the department's
coordinators to settle (exchange/incidents.py)."""

from collections.abc import Callable
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template
from litestar.security.jwt import Token

from api.auth import requires
from api.pages.forms import savepoint, text
from api.pages.rendering import page, redirect, translator
from api.params import DB, After
from catalog.identity import Identity
from catalog.models import Role
from exchange import incidents
from exchange.errors import ExchangeError
from exchange.models import IncidentStatus

PAGE_SIZE = 20


def kind_labels(_: Callable[[str], str]) -> dict[str, str]:
    return {
        "second_handover": _("handed over a second time"),
        "after_cancellation": _("handed over after the order was cancelled"),
        "after_expiry": _("handed over after the order expired"),
    }


class IncidentPages(Controller):
    path = "/coord/incidents"
    guards = [requires(Role.coordinator)]
    include_in_schema = False

    @get("/")
    async def list_incidents(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        status: Annotated[str, QueryParameter(max_length=16)] = IncidentStatus.open.value,
        after: After = None,
    ) -> Template:
        return await self._page(request, db, status, after)

    @post("/{incident_id:str}/resolve")
    async def resolve(
        self, request: Request[Identity, Token, Any], db: DB, incident_id: FromPath[str]
    ) -> Redirect | Template:
        form = await request.form()
        try:
            async with savepoint(db):
                await incidents.resolve(
                    db,
                    request.user,
                    request.user.department_id or "",
                    incident_id,
                    resolution=text(form, "resolution", 16),
                    note=text(form, "note", incidents.MAX_NOTE + 1),
                )
        except ExchangeError as error:
            _ = translator(request).gettext
            messages = {
                "InvalidTransition": _("This incident was settled already."),
                "InvalidInput": _(
                    "Choose how it was settled; the note has at most 300 characters."
                ),
                "NotFound": _("There is no such incident."),
            }
            message = messages.get(type(error).__name__, str(error.detail))
            return await self._page(request, db, "open", None, error=message, status_code=409)
        return redirect("/coord/incidents?settled=" + incident_id)

    async def _page(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        status: str,
        after: str | None,
        *,
        error: str = "",
        status_code: int = 200,
    ) -> Template:
        _ = translator(request).gettext
        if status not in IncidentStatus.__members__:
            status = IncidentStatus.open.value
        listed = await incidents.list_incidents(
            db,
            request.user,
            request.user.department_id or "",
            status=status,
            limit=PAGE_SIZE,
            after=after,
        )
        return page(
            request,
            "coord/incidents.html",
            status_code=status_code,
            title=_("Incidents at the pickup desk"),
            status=status,
            incidents=listed.items,
            next=listed.next,
            kinds=kind_labels(_),
            error=error,
            settled=request.query_params.get("settled", ""),
        )
