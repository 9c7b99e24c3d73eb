"""CO2e factors as data the platform operator owns.

A factor says how many grams of CO2e one kilogram or one item of a category avoids, against
which baseline, by which source (publication, version, table or exhibit, page, URL), from
which day it applies, and whether its number still has to be confirmed against that source.
Factors come in sets: every change makes a new set, with who made it and when, and no set is
ever edited, so a report or summary that names the set it used can always be shown again.
The set with the latest `created_at` is the current one; migration 0009 ships the defaults.

CO2e avoided = quantity × factor, in whole grams (rounded down per category): for weighed
categories grams × (g per kg) / 1000, for counted ones items × (g per item). A factor that
applies only to remanufactured cartridges counts only what campaigns marked
`cartridges_remanufactured` collected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.models import new_id, utcnow
from catalog.text import unstorable_character
from exchange.categories import CATEGORIES, Unit
from exchange.errors import InvalidInput, NotFound
from exchange.models import Campaign
from exchange.models import Co2eFactor as FactorRow
from exchange.models import Co2eFactorSet as SetRow

BASES = ("kg", "item")
APPLIES_TO = ("all", "remanufactured")
MAX_GRAMS = 10_000_000  # per kg or item: far above any published factor
EARLIEST, LATEST = date(2000, 1, 1), date(2100, 1, 1)
TEXT_LIMITS = {
    "baseline": 100,
    "publication": 300,
    "version": 100,
    "exhibit": 100,
    "page": 50,
    "url": 500,
    "note_zh": 1000,
    "note_en": 1000,
}


@dataclass(frozen=True)
class Factor:
    category: str
    valid_from: date
    basis: str  # kg or item
    grams: int | None  # grams CO2e avoided per kg or item; None: nothing is claimed
    baseline: str
    applies_to: str  # all, or remanufactured (cartridges of campaigns that remanufacture)
    publication: str
    version: str
    exhibit: str
    page: str
    url: str
    note_zh: str
    note_en: str
    to_confirm: bool

    def avoided(self, quantity: int) -> int | None:
        """Whole grams avoided for a quantity in the category's unit (grams or items)."""
        if self.grams is None:
            return None
        return quantity * self.grams // 1000 if self.basis == "kg" else quantity * self.grams

    def note(self, language: str) -> str:
        return self.note_zh if language == "zh" else self.note_en


@dataclass(frozen=True)
class FactorSet:
    id: str
    created_at: datetime
    created_by: str
    note: str
    factors: tuple[Factor, ...]

    def for_period(self, category: str, last_day: date) -> Factor | None:
        """The category's factor in force on the period's last day."""
        found = [f for f in self.factors if f.category == category and f.valid_from <= last_day]
        return max(found, key=lambda f: f.valid_from) if found else None

    def avoided(
        self,
        category: str,
        last_day: date,
        by_campaign: Mapping[str, int],
        remanufacturing: set[str],
    ) -> int | None:
        """Grams avoided by a category's quantities per campaign; None when no factor claims."""
        factor = self.for_period(category, last_day)
        if factor is None or factor.grams is None:
            return None
        counted = sum(
            quantity
            for campaign, quantity in by_campaign.items()
            if factor.applies_to == "all" or campaign in remanufacturing
        )
        return factor.avoided(counted)


FACTOR_FIELDS = tuple(f.name for f in fields(Factor))


def _factor(row: FactorRow) -> Factor:
    return Factor(**{name: getattr(row, name) for name in FACTOR_FIELDS})


async def _load(session: AsyncSession, found: SetRow) -> FactorSet:
    rows = await session.exec(
        select(FactorRow)
        .where(FactorRow.set_id == found.id)
        .order_by(col(FactorRow.category), col(FactorRow.valid_from))
    )
    order = list(CATEGORIES)
    factors = sorted(
        (_factor(r) for r in rows.all()), key=lambda f: (order.index(f.category), f.valid_from)
    )
    return FactorSet(found.id, found.created_at, found.created_by, found.note, tuple(factors))


async def current_set(session: AsyncSession) -> FactorSet:
    found = (
        await session.exec(
            select(SetRow).order_by(col(SetRow.created_at).desc(), col(SetRow.id).desc()).limit(1)
        )
    ).one()
    return await _load(session, found)


async def get_set(session: AsyncSession, set_id: str) -> FactorSet:
    found = await session.get(SetRow, set_id) if len(set_id) <= 32 else None
    if found is None:
        raise NotFound(f"No CO2e factor set {set_id!r}.")
    return await _load(session, found)


async def factor_set(session: AsyncSession, set_id: str | None) -> FactorSet:
    """The named set, or the current one."""
    return await get_set(session, set_id) if set_id else await current_set(session)


@dataclass(frozen=True)
class SetInfo:
    id: str
    created_at: datetime
    created_by: str
    note: str


async def history(session: AsyncSession) -> list[SetInfo]:
    """Every set, newest first: who changed the factors and when."""
    rows = await session.exec(
        select(SetRow).order_by(col(SetRow.created_at).desc(), col(SetRow.id).desc())
    )
    return [SetInfo(r.id, r.created_at, r.created_by, r.note) for r in rows.all()]


def _check(factor: Factor, index: int) -> None:
    where = f"factors[{index}]"
    if factor.category not in CATEGORIES:
        raise InvalidInput(f"{where}.category", f"one of {', '.join(CATEGORIES)}")
    expected = "kg" if CATEGORIES[factor.category].unit is Unit.gram else "item"
    if factor.basis != expected:
        raise InvalidInput(f"{where}.basis", f"{factor.category} is counted per {expected}")
    if factor.grams is not None and not 0 <= factor.grams <= MAX_GRAMS:
        raise InvalidInput(f"{where}.grams", f"whole grams, 0-{MAX_GRAMS:,}, or null")
    if factor.applies_to not in APPLIES_TO:
        raise InvalidInput(f"{where}.applies_to", "all or remanufactured")
    if not EARLIEST <= factor.valid_from < LATEST:
        raise InvalidInput(f"{where}.valid_from", "a day between 2000-01-01 and 2099-12-31")
    for name, limit in TEXT_LIMITS.items():
        value = getattr(factor, name)
        if len(value) > limit:
            raise InvalidInput(f"{where}.{name}", f"at most {limit} characters")
        if character := unstorable_character(value):
            raise InvalidInput(f"{where}.{name}", f"must not contain the character {character}")
    if factor.url and not factor.url.startswith(("https://", "http://")):
        raise InvalidInput(f"{where}.url", "an http(s) address, or empty")


async def save_set(
    session: AsyncSession, factors: Sequence[Factor], *, note: str, actor_id: str
) -> FactorSet:
    """A new current set holding exactly `factors`; the earlier sets stay as they were."""
    for index, factor in enumerate(factors):
        _check(factor, index)
    keys = [(f.category, f.valid_from) for f in factors]
    if len(set(keys)) != len(keys):
        raise InvalidInput("factors", "one factor per category and valid_from")
    note = note.strip()
    if len(note) > 300 or unstorable_character(note):
        raise InvalidInput("note", "at most 300 storable characters")
    row = SetRow(id=new_id(), created_at=utcnow(), created_by=actor_id, note=note)
    session.add(row)
    await session.flush()
    session.add_all(
        FactorRow(set_id=row.id, **{n: getattr(f, n) for n in FACTOR_FIELDS}) for f in factors
    )
    await session.flush()
    return await _load(session, row)


async def remanufacturing_campaigns(session: AsyncSession) -> set[str]:
    found = await session.exec(select(Campaign.id).where(col(Campaign.cartridges_remanufactured)))
    return set(found.all())
