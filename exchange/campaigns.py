"""Campaigns (exchange windows) and their rate cards, set by the platform admin.

A campaign either applies to every department (no department) or to one. At any moment a
department has at most one open campaign: windows of the same scope may not overlap, and
where a department's own campaign overlaps a platform-wide one, its own wins.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.models import Department, utcnow
from catalog.paging import Page, page_of
from exchange.categories import category
from exchange.errors import (
    CampaignOverlap,
    CategoryNotRated,
    InvalidInput,
    NoOpenCampaign,
    NotFound,
)
from exchange.models import Campaign, CampaignRate, Policy

SHANGHAI = ZoneInfo("Asia/Shanghai")
MAX_DAILY_CAP = 1_000_000
MAX_RATE = 100_000
MAX_WINDOW = timedelta(days=366)
# Campaigns are this century's business; the bounds also keep every window far from the ends
# of what a datetime holds, where shifting to China time would overflow.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def local_day(at: datetime) -> str:
    """The calendar day in Asia/Shanghai that daily caps count by."""
    return at.astimezone(SHANGHAI).date().isoformat()


@dataclass(frozen=True)
class NewCampaign:
    name: str
    starts_at: datetime
    ends_at: datetime
    policy: str
    daily_cap_points: int
    department_id: str | None = None
    # Its collected cartridges go to remanufacturing (CO2e factors for that then apply).
    cartridges_remanufactured: bool = False
    # When its points expire (exchange/expiry.py): at a time, or N days after it ends.
    points_expire_at: datetime | None = None
    points_expire_days: int | None = None


def _check(new: NewCampaign) -> None:
    if not new.name.strip() or len(new.name) > 100:
        raise InvalidInput("name", "1-100 characters")
    for field in ("starts_at", "ends_at"):
        if getattr(new, field).tzinfo is None:
            raise InvalidInput(
                field, "a time with a timezone offset, e.g. 2026-06-14T00:00:00+08:00"
            )
        if not EARLIEST <= getattr(new, field) <= LATEST:
            raise InvalidInput(field, "a time between 2000-01-01 and 2100-01-01 (UTC)")
    if new.ends_at <= new.starts_at:
        raise InvalidInput("ends_at", "must be after starts_at")
    if new.ends_at - new.starts_at > MAX_WINDOW:
        raise InvalidInput("ends_at", "a campaign lasts at most 366 days")
    if new.policy not in Policy.__members__:
        raise InvalidInput("policy", "auto or steward")
    if not 1 <= new.daily_cap_points <= MAX_DAILY_CAP:
        raise InvalidInput("daily_cap_points", f"a whole number of points, 1-{MAX_DAILY_CAP}")
    _check_expiry(new)


MAX_EXPIRE_DAYS = 3650


def _check_expiry(new: NewCampaign) -> None:
    at, days = new.points_expire_at, new.points_expire_days
    if at is not None and days is not None:
        raise InvalidInput("points_expire_days", "give points_expire_at or points_expire_days")
    if at is not None:
        if at.tzinfo is None:
            raise InvalidInput("points_expire_at", "a time with a timezone offset")
        if not new.ends_at <= at <= LATEST:
            raise InvalidInput(
                "points_expire_at", "not before the campaign ends, and before 2100-01-01 (UTC)"
            )
    if days is not None and not 0 <= days <= MAX_EXPIRE_DAYS:
        raise InvalidInput("points_expire_days", f"a whole number of days, 0-{MAX_EXPIRE_DAYS}")


async def _check_no_overlap(
    session: AsyncSession, new: NewCampaign, excluding: str | None = None
) -> None:
    same_scope = (
        col(Campaign.department_id).is_(None)
        if new.department_id is None
        else Campaign.department_id == new.department_id
    )
    query = select(Campaign).where(
        same_scope,
        col(Campaign.starts_at) < new.ends_at,
        col(Campaign.ends_at) > new.starts_at,
    )
    if excluding is not None:
        query = query.where(Campaign.id != excluding)
    if clash := (await session.exec(query)).first():
        raise CampaignOverlap(
            f"The window overlaps campaign {clash.name!r} ({clash.starts_at.isoformat()} to "
            f"{clash.ends_at.isoformat()}) of the same scope."
        )


async def create_campaign(session: AsyncSession, new: NewCampaign, actor_id: str) -> Campaign:
    _check(new)
    if new.department_id is not None and await session.get(Department, new.department_id) is None:
        raise NotFound(f"No department {new.department_id!r}.")
    await _check_no_overlap(session, new)
    campaign = Campaign(
        name=new.name.strip(),
        starts_at=new.starts_at,
        ends_at=new.ends_at,
        policy=Policy(new.policy),
        daily_cap_points=new.daily_cap_points,
        department_id=new.department_id,
        cartridges_remanufactured=new.cartridges_remanufactured,
        created_by=actor_id,
        points_expire_at=new.points_expire_at,
        points_expire_days=new.points_expire_days,
    )
    session.add(campaign)
    await session.flush()
    return campaign


KEEP: Any = object()  # a change that leaves the expiry as it is (None clears it)


@dataclass(frozen=True)
class CampaignChanges:
    """Fields to change; None leaves one as it is (the expiry's: KEEP). The scope
    (department) never changes."""

    name: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    policy: str | None = None
    daily_cap_points: int | None = None
    cartridges_remanufactured: bool | None = None
    points_expire_at: datetime | None = KEEP
    points_expire_days: int | None = KEEP


async def update_campaign(
    session: AsyncSession, campaign_id: str, changes: CampaignChanges
) -> Campaign:
    """Extend, shorten or end a campaign, change its policy or cap. Drop-offs already logged
    keep their rate and status: a pending one stays pending until a coordinator decides."""
    campaign = await session.get(Campaign, campaign_id, with_for_update=True)
    if campaign is None:
        raise NotFound(f"No campaign {campaign_id!r}.")
    merged = NewCampaign(
        name=campaign.name if changes.name is None else changes.name,
        starts_at=campaign.starts_at if changes.starts_at is None else changes.starts_at,
        ends_at=campaign.ends_at if changes.ends_at is None else changes.ends_at,
        policy=campaign.policy if changes.policy is None else changes.policy,
        daily_cap_points=campaign.daily_cap_points
        if changes.daily_cap_points is None
        else changes.daily_cap_points,
        department_id=campaign.department_id,
        points_expire_at=campaign.points_expire_at
        if changes.points_expire_at is KEEP
        else changes.points_expire_at,
        points_expire_days=campaign.points_expire_days
        if changes.points_expire_days is KEEP
        else changes.points_expire_days,
    )
    expiry = (merged.points_expire_at, merged.points_expire_days)
    if campaign.expiry_done_at is not None and expiry != (
        campaign.points_expire_at,
        campaign.points_expire_days,
    ):
        raise InvalidInput("points_expire_at", "this campaign's points have expired already")
    _check(merged)
    await _check_no_overlap(session, merged, excluding=campaign.id)
    campaign.name = merged.name.strip()
    campaign.starts_at, campaign.ends_at = merged.starts_at, merged.ends_at
    campaign.policy = Policy(merged.policy)
    campaign.daily_cap_points = merged.daily_cap_points
    if changes.cartridges_remanufactured is not None:
        campaign.cartridges_remanufactured = changes.cartridges_remanufactured
    campaign.points_expire_at, campaign.points_expire_days = expiry
    session.add(campaign)
    await session.flush()
    return campaign


async def list_campaigns(
    session: AsyncSession, department_id: str | None, *, limit: int, after: str | None
) -> Page[Campaign]:
    """Campaigns a department sees (its own and platform-wide ones); all for the platform."""
    query = select(Campaign).order_by(col(Campaign.id)).limit(limit + 1)
    if department_id is not None:
        query = query.where(
            or_(col(Campaign.department_id).is_(None), Campaign.department_id == department_id)
        )
    if after:
        query = query.where(col(Campaign.id) > after)
    return page_of((await session.exec(query)).all(), limit, lambda campaign: campaign.id)


async def get_campaign(
    session: AsyncSession, campaign_id: str, department_id: str | None = None
) -> Campaign:
    campaign = await session.get(Campaign, campaign_id)
    visible = campaign is not None and (
        department_id is None or campaign.department_id in (None, department_id)
    )
    if not visible or campaign is None:
        raise NotFound(f"No campaign {campaign_id!r}.")
    return campaign


async def open_campaign(
    session: AsyncSession, department_id: str, now: datetime | None = None
) -> Campaign:
    now = now or utcnow()
    found = await session.exec(
        select(Campaign).where(
            or_(col(Campaign.department_id).is_(None), Campaign.department_id == department_id),
            col(Campaign.starts_at) <= now,
            col(Campaign.ends_at) > now,
        )
    )
    campaigns = found.all()
    if not campaigns:
        raise NoOpenCampaign(
            "No exchange campaign is open right now, so drop-offs cannot be recorded."
        )
    # The department's own campaign wins over a platform-wide one.
    return sorted(campaigns, key=lambda c: c.department_id is None)[0]


async def rates_of(session: AsyncSession, campaign_id: str) -> list[CampaignRate]:
    found = await session.exec(
        select(CampaignRate)
        .where(CampaignRate.campaign_id == campaign_id)
        .order_by(col(CampaignRate.category))
    )
    return list(found.all())


async def rate_for(session: AsyncSession, campaign: Campaign, category_code: str) -> int:
    rate = await session.get(CampaignRate, (campaign.id, category_code))
    if rate is None:
        raise CategoryNotRated(
            f"The campaign {campaign.name!r} gives no points for {category_code!r}."
        )
    return rate.points


async def set_rates(
    session: AsyncSession, campaign_id: str, rates: dict[str, int], actor_id: str
) -> list[CampaignRate]:
    """Replace the whole rate card. Drop-offs keep the rate they were priced at."""
    await get_campaign(session, campaign_id)
    for code, points in rates.items():
        category(code)
        if not 1 <= points <= MAX_RATE:
            raise InvalidInput(f"rates.{code}", f"a whole number of points, 1-{MAX_RATE}")
    await session.exec(delete(CampaignRate).where(col(CampaignRate.campaign_id) == campaign_id))
    session.add_all(
        CampaignRate(campaign_id=campaign_id, category=code, points=points, updated_by=actor_id)
        for code, points in rates.items()
    )
    await session.flush()
    return await rates_of(session, campaign_id)
