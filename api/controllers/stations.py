"""Collection points (stations) and their QR posters."""

import asyncio
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.security.jwt import Token

from api import posters
from api.auth import requires
from api.params import DB, After, Limit
from catalog import departments
from catalog.identity import Identity
from catalog.models import Role
from catalog.paging import DEFAULT_LIMIT
from exchange import qr, stations
from exchange.errors import NotFound
from exchange.models import Station
from exchange.stations import StationChanges

StationName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Location = Annotated[str, msgspec.Meta(max_length=200)]
BoxSize = Annotated[
    int,
    QueryParameter(ge=qr.MIN_BOX_PX, le=qr.MAX_BOX_PX, description="pixels per QR module"),
]


class StationIn(msgspec.Struct):
    name: StationName
    location: Location = ""


class StationPatch(msgspec.Struct):
    name: StationName | None = None
    location: Location | None = None
    active: bool | None = None


class StationOut(msgspec.Struct):
    id: str
    department_id: str
    code: str
    name: str
    location: str
    active: bool
    url: str
    created_at: str

    @classmethod
    def of(cls, station: Station, base_url: str) -> "StationOut":
        return cls(
            id=station.id,
            department_id=station.department_id,
            code=station.code,
            name=station.name,
            location=station.location,
            active=station.active,
            url=stations.poster_url(base_url, station.code),
            created_at=station.created_at.isoformat(),
        )


class StationPage(msgspec.Struct):
    items: list[StationOut]
    next: str | None


def _base_url(request: Request[Any, Any, Any]) -> str:
    return request.app.state.settings.public_base_url


COORDINATOR = [requires(Role.coordinator)]


class StationController(Controller):
    path = "/api"
    tags = ["Collection points"]

    @get("/departments/{department_id:str}/stations", guards=COORDINATOR)
    async def list_stations(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        limit: Limit = DEFAULT_LIMIT,
        after: After = None,
    ) -> StationPage:
        await departments.get_department(db, request.user, department_id)
        page = await stations.list_stations(db, department_id, limit=limit, after=after)
        base = _base_url(request)
        return StationPage([StationOut.of(s, base) for s in page.items], page.next)

    @post(
        "/departments/{department_id:str}/stations",
        status_code=201,
        guards=COORDINATOR,
        summary="Add a collection point; it gets a short unguessable code for its poster",
    )
    async def create_station(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        data: JSONBody[StationIn],
    ) -> StationOut:
        await departments.get_active_department(db, request.user, department_id)
        station = await stations.create_station(
            db, department_id, name=data.name, location=data.location, actor_id=request.user.user_id
        )
        return StationOut.of(station, _base_url(request))

    @patch(
        "/departments/{department_id:str}/stations/{station_id:str}",
        guards=COORDINATOR,
        summary="Rename, move, or take a collection point out of (or back into) use",
    )
    async def update_station(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        station_id: FromPath[str],
        data: JSONBody[StationPatch],
    ) -> StationOut:
        await departments.get_department(db, request.user, department_id)
        station = await stations.update_station(
            db,
            department_id,
            station_id,
            StationChanges(data.name, data.location, data.active),
            request.user.user_id,
        )
        return StationOut.of(station, _base_url(request))

    @get(
        "/departments/{department_id:str}/stations/posters",
        guards=COORDINATOR,
        media_type="text/html",
        summary="Printable A4 posters of every active collection point (HTML, inline SVG QR)",
    )
    async def posters(
        self, request: Request[Identity, Token, Any], db: DB, department_id: FromPath[str]
    ) -> Response[str]:
        department = await departments.get_department(db, request.user, department_id)
        base = _base_url(request)
        items = [
            posters.Poster(s.name, s.location, stations.poster_url(base, s.code))
            for s in await stations.all_stations(db, department_id)
            if s.active
        ]
        return Response(
            await asyncio.to_thread(posters.render, department.name, items), media_type="text/html"
        )

    @get(
        "/stations/{code:str}",
        summary="The collection point a QR poster leads to",
        description="Refused with 403 when the point belongs to another department.",
    )
    async def get_station(
        self, request: Request[Identity, Token, Any], db: DB, code: FromPath[str]
    ) -> StationOut:
        station = await stations.visible_station(db, request.user, code)
        return StationOut.of(station, _base_url(request))

    async def _own_station(self, db: DB, caller: Identity, code: str) -> Station:
        station = await stations.station_by_code(db, code)
        if not caller.may_see_department(station.department_id):
            raise NotFound(f"No collection point with code {code!r}.")
        return station

    @get(
        "/stations/{code:str}/qr.png",
        guards=COORDINATOR,
        media_type="image/png",
        summary="The poster's QR code as PNG, encoding {PUBLIC_BASE_URL}/s/{code}",
    )
    async def qr_png(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        code: FromPath[str],
        box: BoxSize = qr.DEFAULT_BOX_PX,
    ) -> Response[bytes]:
        station = await self._own_station(db, request.user, code)
        url = stations.poster_url(_base_url(request), station.code)
        return Response(await asyncio.to_thread(qr.png, url, box), media_type="image/png")

    @get(
        "/stations/{code:str}/qr.svg",
        guards=COORDINATOR,
        media_type="image/svg+xml",
        summary="The poster's QR code as SVG, encoding {PUBLIC_BASE_URL}/s/{code}",
    )
    async def qr_svg(
        self, request: Request[Identity, Token, Any], db: DB, code: FromPath[str]
    ) -> Response[str]:
        station = await self._own_station(db, request.user, code)
        url = stations.poster_url(_base_url(request), station.code)
        return Response(await asyncio.to_thread(qr.svg, url), media_type="image/svg+xml")
