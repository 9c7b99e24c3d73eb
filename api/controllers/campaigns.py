"""Campaigns, their rate cards, and the categories that can be dropped off."""

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, patch, post, put
from litestar.params import FromPath, JSONBody
from litestar.security.jwt import Token

from api.auth import requires
from api.controllers.refusals import refusals
from api.params import DB, After, Limit
from catalog.identity import Identity
from catalog.models import Role, utcnow
from catalog.paging import DEFAULT_LIMIT
from exchange import campaigns
from exchange.campaigns import KEEP, CampaignChanges, NewCampaign
from exchange.categories import CATEGORIES, ROUNDING_RULE
from exchange.errors import InvalidInput
from exchange.expiry import expires_at
from exchange.models import Campaign, CampaignRate

Points = Annotated[int, msgspec.Meta(ge=1, le=campaigns.MAX_RATE)]


class CategoryOut(msgspec.Struct):
    code: str
    name_zh: str
    name_en: str
    unit: str
    minimum: int
    maximum: int
    rate_unit: str


ExpireDays = Annotated[int, msgspec.Meta(ge=0, le=campaigns.MAX_EXPIRE_DAYS)]


class CampaignIn(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    starts_at: datetime
    ends_at: datetime
    policy: Literal["auto", "steward"]
    daily_cap_points: Annotated[int, msgspec.Meta(ge=1, le=campaigns.MAX_DAILY_CAP)]
    department_id: str | None = None
    cartridges_remanufactured: Annotated[
        bool, msgspec.Meta(description="its cartridges go to remanufacturing (CO2e factors)")
    ] = False
    # When the points it issues expire: at a time, or this many days after it ends; neither:
    # never. Reminders go out before (EXCHANGE_POINTS_EXPIRY_REMINDER_DAYS).
    points_expire_at: datetime | None = None
    points_expire_days: ExpireDays | None = None


class CampaignPatch(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    policy: Literal["auto", "steward"] | None = None
    daily_cap_points: Annotated[int, msgspec.Meta(ge=1, le=campaigns.MAX_DAILY_CAP)] | None = None
    cartridges_remanufactured: bool | None = None
    # Absent: unchanged; null: the points never expire.
    points_expire_at: datetime | msgspec.UnsetType | None = msgspec.UNSET
    points_expire_days: ExpireDays | msgspec.UnsetType | None = msgspec.UNSET


class RateIn(msgspec.Struct):
    category: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    points: Points


class RateCardIn(msgspec.Struct):
    rates: Annotated[list[RateIn], msgspec.Meta(max_length=len(CATEGORIES))]


class RateOut(msgspec.Struct):
    category: str
    unit: str
    rate_unit: str
    points: int

    @classmethod
    def of(cls, rate: CampaignRate) -> "RateOut":
        kind = CATEGORIES[rate.category]
        return cls(rate.category, kind.unit.value, kind.rate_unit, rate.points)


class RateCardOut(msgspec.Struct):
    campaign_id: str
    rounding: str
    rates: list[RateOut]


class CampaignOut(msgspec.Struct):
    id: str
    name: str
    department_id: str | None
    starts_at: str
    ends_at: str
    policy: str
    daily_cap_points: int
    cartridges_remanufactured: bool
    status: str  # upcoming, open or closed, as of the answer
    points_expire_at: str | None  # as set
    points_expire_days: int | None  # as set
    points_expire: str | None  # when its points expire, whichever way it was set; null: never

    @classmethod
    def of(cls, campaign: Campaign) -> "CampaignOut":
        now = utcnow()
        status = (
            "upcoming"
            if now < campaign.starts_at
            else "open"
            if now < campaign.ends_at
            else "closed"
        )
        return cls(
            id=campaign.id,
            name=campaign.name,
            department_id=campaign.department_id,
            starts_at=campaign.starts_at.isoformat(),
            ends_at=campaign.ends_at.isoformat(),
            policy=campaign.policy,
            daily_cap_points=campaign.daily_cap_points,
            cartridges_remanufactured=campaign.cartridges_remanufactured,
            status=status,
            points_expire_at=campaign.points_expire_at.isoformat()
            if campaign.points_expire_at
            else None,
            points_expire_days=campaign.points_expire_days,
            points_expire=expires.isoformat() if (expires := expires_at(campaign)) else None,
        )


class CampaignPage(msgspec.Struct):
    items: list[CampaignOut]
    next: str | None


RATES_DESCRIPTION = (
    "Points per kilogram for weighed categories (paper), per item for counted ones. "
    + ROUNDING_RULE
    + " The rate is snapshotted into each drop-off: changing the card never re-prices one."
)


class CampaignController(Controller):
    path = "/api"
    tags = ["Campaigns and rates"]

    @get(
        "/categories",
        summary="What can be dropped off, its unit and the quantity bounds",
        description=ROUNDING_RULE,
    )
    async def categories(self) -> list[CategoryOut]:
        return [
            CategoryOut(
                c.code, c.name_zh, c.name_en, c.unit.value, c.minimum, c.maximum, c.rate_unit
            )
            for c in CATEGORIES.values()
        ]

    @get("/campaigns", summary="Campaigns: the caller's department's and platform-wide ones")
    async def list_campaigns(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        limit: Limit = DEFAULT_LIMIT,
        after: After = None,
    ) -> CampaignPage:
        page = await campaigns.list_campaigns(
            db, request.user.department_id, limit=limit, after=after
        )
        return CampaignPage([CampaignOut.of(c) for c in page.items], page.next)

    @post(
        "/campaigns",
        status_code=201,
        guards=[requires(Role.admin)],
        summary="Open a campaign: window, verification policy, per-employee daily cap",
        description="Without `department_id` the campaign applies to every department. "
        "`auto` credits drop-offs at once; `steward` keeps them pending until a coordinator "
        "confirms. The daily cap counts points per employee per calendar day in Asia/Shanghai. "
        "Windows of the same scope may not overlap. `points_expire_at` (a time not before "
        "`ends_at`) or `points_expire_days` (days after `ends_at`) make the points the campaign "
        "issued expire: what is left of them, first in first out, moves to the department's "
        "`expiry` account, after a reminder; neither means they never expire.",
        responses=refusals(_404="No department with that `department_id`"),
    )
    async def create_campaign(
        self, request: Request[Identity, Token, Any], db: DB, data: JSONBody[CampaignIn]
    ) -> CampaignOut:
        campaign = await campaigns.create_campaign(
            db,
            NewCampaign(
                name=data.name,
                starts_at=data.starts_at,
                ends_at=data.ends_at,
                policy=data.policy,
                daily_cap_points=data.daily_cap_points,
                department_id=data.department_id,
                cartridges_remanufactured=data.cartridges_remanufactured,
                points_expire_at=data.points_expire_at,
                points_expire_days=data.points_expire_days,
            ),
            request.user.user_id,
        )
        return CampaignOut.of(campaign)

    @get("/campaigns/{campaign_id:str}")
    async def get_campaign(
        self, request: Request[Identity, Token, Any], db: DB, campaign_id: FromPath[str]
    ) -> CampaignOut:
        return CampaignOut.of(
            await campaigns.get_campaign(db, campaign_id, request.user.department_id)
        )

    @patch(
        "/campaigns/{campaign_id:str}",
        guards=[requires(Role.admin)],
        summary="Change a campaign's window, policy, cap or name",
        description="E.g. end it early by setting `ends_at` to now. Drop-offs already logged "
        "keep their rate and status; the new policy and cap apply to new drop-offs. "
        "`points_expire_at: null` with `points_expire_days: null` makes the points never "
        "expire; once they have expired, the expiry cannot change.",
    )
    async def update_campaign(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        campaign_id: FromPath[str],
        data: JSONBody[CampaignPatch],
    ) -> CampaignOut:
        changes = {
            name: KEEP if value is msgspec.UNSET else value
            for name, value in msgspec.structs.asdict(data).items()
        }
        campaign = await campaigns.update_campaign(db, campaign_id, CampaignChanges(**changes))
        return CampaignOut.of(campaign)

    @get(
        "/campaigns/{campaign_id:str}/rates",
        summary="The campaign's rate card",
        description=RATES_DESCRIPTION,
    )
    async def get_rates(
        self, request: Request[Identity, Token, Any], db: DB, campaign_id: FromPath[str]
    ) -> RateCardOut:
        await campaigns.get_campaign(db, campaign_id, request.user.department_id)
        rates = await campaigns.rates_of(db, campaign_id)
        return RateCardOut(campaign_id, ROUNDING_RULE, [RateOut.of(r) for r in rates])

    @put(
        "/campaigns/{campaign_id:str}/rates",
        guards=[requires(Role.admin)],
        summary="Replace the campaign's rate card",
        description=RATES_DESCRIPTION,
    )
    async def put_rates(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        campaign_id: FromPath[str],
        data: JSONBody[RateCardIn],
    ) -> RateCardOut:
        by_category = {rate.category: rate.points for rate in data.rates}
        if len(by_category) != len(data.rates):
            raise InvalidInput("rates", "each category at most once")
        rates = await campaigns.set_rates(db, campaign_id, by_category, request.user.user_id)
        return RateCardOut(campaign_id, ROUNDING_RULE, [RateOut.of(r) for r in rates])
