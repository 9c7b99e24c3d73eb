"""Coordinator page: pending drop-offs to confirm (with the weighed or counted quantity) or
reject (with a reason), one at a time or in bulk."""

from dataclasses import dataclass
from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Template
from litestar.security.jwt import Token

from api.auth import requires
from api.pages.employee import category_name
from api.pages.forms import savepoint, text
from api.pages.quantities import BadQuantity, parse_quantity, show_quantity
from api.pages.rendering import language_of, page, translator
from api.params import DB
from catalog import members
from catalog.identity import Identity
from catalog.models import Role
from catalog.paging import MAX_LIMIT
from exchange import dropoffs, stations
from exchange.categories import CATEGORIES, Unit
from exchange.errors import ExchangeError, InvalidTransition, QuantityOutOfBounds
from exchange.models import Dropoff, DropoffStatus


@dataclass(frozen=True)
class Row:
    dropoff: Dropoff
    person: str
    station: str
    category: str
    weighed: bool
    quantity: str


class DropoffReview(Controller):
    path = "/coord/dropoffs"
    guards = [requires(Role.coordinator)]
    include_in_schema = False

    async def _render(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        *,
        values: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        done: dict[str, int] | None = None,
        selected: set[str] | None = None,
        status_code: int = 200,
    ) -> Template:
        department_id = request.user.department_id or ""
        pending = await dropoffs.list_dropoffs(
            db,
            department_id,
            user_id=None,
            status=DropoffStatus.pending,
            limit=MAX_LIMIT,
            after=None,
        )
        people = {
            m.user.id: m.user.display_name
            for m in (
                await members.list_members(db, department_id, limit=MAX_LIMIT, after=None)
            ).items
        }
        places = {s.id: s.name for s in await stations.all_stations(db, department_id)}
        language = language_of(request)
        rows = [
            Row(
                dropoff=d,
                person=people.get(d.user_id, d.user_id),
                station=places.get(d.station_id, ""),
                category=category_name(CATEGORIES[d.category], language),
                weighed=CATEGORIES[d.category].unit is Unit.gram,
                quantity=show_quantity(d.quantity, CATEGORIES[d.category].unit is Unit.gram),
            )
            for d in pending.items
        ]
        return page(
            request,
            "coord/dropoffs.html",
            status_code=status_code,
            title=translator(request).gettext("Drop-offs"),
            rows=rows,
            values=values or {},
            errors=errors or {},
            done=done or {},
            selected=selected or set(),
        )

    @get("/")
    async def review(self, request: Request[Identity, Token, Any], db: DB) -> Template:
        return await self._render(request, db)

    @post("/")
    async def decide(self, request: Request[Identity, Token, Any], db: DB) -> Template:
        """One form: a row's own Confirm/Reject button, or the bulk buttons for the ticked rows."""
        _ = translator(request).gettext
        form = await request.form()
        values = {key: text(form, key, 300) for key in form if isinstance(form.get(key), str)}
        chosen = [str(v) for v in form.getall("selected", []) if isinstance(v, str)]
        if single := text(form, "confirm", 32):
            decisions = [(single, "confirm", values.get(f"reason-{single}", ""))]
        elif single := text(form, "reject", 32):
            decisions = [(single, "reject", values.get(f"reason-{single}", ""))]
        else:
            action = text(form, "bulk", 10)
            decisions = [(d, action, values.get("bulk_reason", "")) for d in chosen]
        errors: dict[str, str] = {}
        done = {"confirmed": 0, "rejected": 0}
        if not decisions:
            errors["_form"] = _("Tick the drop-offs to decide on first.")
        elif not single and action == "reject" and not values.get("bulk_reason", "").strip():
            errors["bulk_reason"] = _("Say why the drop-off is rejected.")
            decisions = []
        for dropoff_id, action, reason in decisions:
            error = await self._decide(request, db, dropoff_id, action, values, reason)
            if error:
                errors[dropoff_id] = error
            else:
                done["confirmed" if action == "confirm" else "rejected"] += 1
        return await self._render(
            request,
            db,
            values=values,
            errors=errors,
            done=done,
            selected=set(chosen) if errors else set(),
            status_code=422 if errors else 200,
        )

    async def _decide(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        dropoff_id: str,
        action: str,
        values: dict[str, str],
        reason: str,
    ) -> str | None:
        """Each decision stands alone: one refused row does not undo the others."""
        _ = translator(request).gettext
        department_id = request.user.department_id or ""
        try:
            dropoff = await dropoffs.get_dropoff(db, request.user, dropoff_id)
            kind = CATEGORIES[dropoff.category]
            if action == "reject":
                if not reason.strip():
                    return _("Say why the drop-off is rejected.")
                async with savepoint(db):
                    await dropoffs.reject_dropoff(
                        db, department_id, dropoff_id, request.user.user_id, reason=reason
                    )
                return None
            if action != "confirm":
                return _("Choose Confirm or Reject.")
            typed = values.get(f"quantity-{dropoff_id}", "")
            quantity = parse_quantity(typed, kind.unit is Unit.gram) if typed else None
            async with savepoint(db):
                await dropoffs.confirm_dropoff(
                    db, department_id, dropoff_id, request.user.user_id, quantity=quantity
                )
        except BadQuantity:
            return _("Enter the weighed or counted quantity, or leave it empty to accept it.")
        except QuantityOutOfBounds as error:
            weighed = error.unit == Unit.gram.value
            low, high = show_quantity(error.minimum, weighed), show_quantity(error.maximum, weighed)
            return (
                _("Between %(low)s and %(high)s kg, please.")
                if weighed
                else _("Between %(low)s and %(high)s items, please.")
            ) % {"low": low, "high": high}
        except InvalidTransition:
            return _("Already decided by someone else.")
        except ExchangeError as error:
            return str(error.detail)
        return None
