"""Collection points (stations): each has a short unguessable code its QR poster carries."""

import secrets
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.identity import Identity
from catalog.models import utcnow
from catalog.paging import Page, page_of
from exchange.errors import ForeignStation, InvalidInput, NotFound, StationInactive
from exchange.models import Station

# 10 characters of lowercase base32: 50 bits, short enough to type from a poster.
CODE_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
CODE_LENGTH = 10
CODE_ATTEMPTS = 5


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def poster_url(public_base_url: str, code: str) -> str:
    return f"{public_base_url}/s/{code}"


def _clean(field: str, value: str, maximum: int, *, required: bool) -> str:
    value = value.strip()
    if (required and not value) or len(value) > maximum:
        raise InvalidInput(field, f"{1 if required else 0}-{maximum} characters")
    return value


async def create_station(
    session: AsyncSession, department_id: str, *, name: str, location: str, actor_id: str
) -> Station:
    name = _clean("name", name, 100, required=True)
    location = _clean("location", location, 200, required=False)
    for _ in range(CODE_ATTEMPTS):
        station = Station(
            department_id=department_id,
            code=new_code(),
            name=name,
            location=location,
            created_by=actor_id,
            updated_by=actor_id,
        )
        try:
            async with session.begin_nested():
                session.add(station)
        except IntegrityError:
            continue  # a code collision: 50 bits make it all but impossible, but never fatal
        return station
    raise RuntimeError("could not find a free station code")


async def list_stations(
    session: AsyncSession, department_id: str, *, limit: int, after: str | None
) -> Page[Station]:
    query = (
        select(Station)
        .where(Station.department_id == department_id)
        .order_by(col(Station.id))
        .limit(limit + 1)
    )
    if after:
        query = query.where(col(Station.id) > after)
    return page_of((await session.exec(query)).all(), limit, lambda station: station.id)


async def all_stations(session: AsyncSession, department_id: str) -> list[Station]:
    query = select(Station).where(Station.department_id == department_id).order_by(col(Station.id))
    return list((await session.exec(query)).all())


async def station_by_code(session: AsyncSession, code: str) -> Station:
    found = await session.exec(select(Station).where(Station.code == code.strip().lower()))
    station = found.first()
    if station is None:
        raise NotFound(f"No collection point with code {code!r}.")
    return station


async def visible_station(session: AsyncSession, caller: Identity, code: str) -> Station:
    """The station a poster leads to, if the caller's department owns it.

    The code is the poster's capability: whoever stands at it knows it. Saying plainly that
    it belongs to another department helps an employee at the wrong poster and reveals
    nothing else about that department.
    """
    station = await station_by_code(session, code)
    if not caller.may_see_department(station.department_id):
        raise ForeignStation(
            "This collection point belongs to another department; use one of your own."
        )
    return station


async def usable_station(session: AsyncSession, caller: Identity, code: str) -> Station:
    station = await visible_station(session, caller, code)
    if not station.active:
        raise StationInactive(f"The collection point {station.name!r} is not in use any more.")
    return station


@dataclass(frozen=True)
class StationChanges:
    name: str | None = None
    location: str | None = None
    active: bool | None = None


async def update_station(
    session: AsyncSession,
    department_id: str,
    station_id: str,
    changes: StationChanges,
    actor_id: str,
) -> Station:
    station = await session.get(Station, (department_id, station_id), with_for_update=True)
    if station is None:
        raise NotFound(f"No collection point {station_id!r}.")
    if changes.name is not None:
        station.name = _clean("name", changes.name, 100, required=True)
    if changes.location is not None:
        station.location = _clean("location", changes.location, 200, required=False)
    if changes.active is not None:
        station.active = changes.active
    station.updated_at = utcnow()
    station.updated_by = actor_id
    session.add(station)
    await session.flush()
    return station
