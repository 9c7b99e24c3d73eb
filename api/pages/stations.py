"""Coordinator pages: collection points and their printable QR posters."""

from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Response, Template
from litestar.security.jwt import Token

from api.auth import requires
from api.pages.forms import savepoint, text
from api.pages.rendering import page, redirect, translator
from api.params import DB
from catalog import departments
from catalog.identity import Identity
from catalog.models import Role
from exchange import stations
from exchange.errors import InvalidInput


class StationPages(Controller):
    path = "/coord/stations"
    guards = [requires(Role.coordinator)]
    include_in_schema = False

    async def _render(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        *,
        values: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        department = await departments.get_department(
            db, request.user, request.user.department_id or ""
        )
        settings = request.app.state.settings
        return page(
            request,
            "coord/stations.html",
            status_code=status_code,
            title=translator(request).gettext("Stations"),
            department=department,
            stations=await stations.all_stations(db, department.id),
            base_url=settings.public_base_url,
            values=values or {},
            errors=errors or {},
        )

    @get("/")
    async def station_list(self, request: Request[Identity, Token, Any], db: DB) -> Template:
        return await self._render(request, db)

    @post("/")
    async def create(self, request: Request[Identity, Token, Any], db: DB) -> Response[Any]:
        _ = translator(request).gettext
        form = await request.form()
        values = {"name": text(form, "name", 200), "location": text(form, "location", 300)}
        try:
            async with savepoint(db):
                await departments.get_active_department(
                    db, request.user, request.user.department_id or ""
                )
                await stations.create_station(
                    db,
                    request.user.department_id or "",
                    name=values["name"],
                    location=values["location"],
                    actor_id=request.user.user_id,
                )
        except InvalidInput as error:
            rule = {
                "name": _("Enter a name of 1–100 characters."),
                "location": _("At most 200 characters."),
            }
            errors = {error.field: rule.get(error.field, error.rule)}
            return await self._render(request, db, values=values, errors=errors, status_code=422)
        return redirect("/coord/stations")

    @post("/{station_id:str}/active")
    async def set_active(
        self, request: Request[Identity, Token, Any], db: DB, station_id: FromPath[str]
    ) -> Response[Any]:
        form = await request.form()
        async with savepoint(db):
            await stations.update_station(
                db,
                request.user.department_id or "",
                station_id,
                stations.StationChanges(active=text(form, "active", 5) == "yes"),
                request.user.user_id,
            )
        return redirect("/coord/stations")
