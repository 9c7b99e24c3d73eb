"""Platform admin pages: campaigns (exchange windows, policy, daily cap) and rate cards."""

from datetime import date, datetime, time, timedelta
from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Response, Template
from litestar.security.jwt import Token

from api.auth import requires
from api.pages.employee import category_name
from api.pages.forms import savepoint, text
from api.pages.quantities import whole_number
from api.pages.rendering import language_of, page, redirect, translator
from api.pages.templating import SHANGHAI, local_time
from api.params import DB
from catalog import departments
from catalog.identity import Identity
from catalog.models import Role
from catalog.paging import MAX_LIMIT
from exchange import campaigns
from exchange.categories import CATEGORIES, Unit
from exchange.errors import CampaignOverlap, InvalidInput, NotFound
from exchange.expiry import expires_at


def parse_day(typed: str) -> date | None:
    try:
        return date.fromisoformat(typed)
    except ValueError:
        return None


def day_start(day: date) -> datetime:
    """Midnight at the start of `day` in Asia/Shanghai, the time zone campaigns are run in."""
    return datetime.combine(day, time(0), tzinfo=SHANGHAI)


class CampaignPages(Controller):
    path = "/admin/campaigns"
    guards = [requires(Role.admin)]
    include_in_schema = False

    async def _list(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        *,
        values: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        listing = await campaigns.list_campaigns(db, None, limit=MAX_LIMIT, after=None)
        all_departments = await departments.list_departments(
            db, request.user, limit=MAX_LIMIT, after=None
        )
        today = datetime.now(SHANGHAI).date()
        return page(
            request,
            "admin/campaigns.html",
            status_code=status_code,
            title=translator(request).gettext("Campaigns"),
            campaigns=list(reversed(listing.items)),
            departments={d.id: d.name for d in all_departments.items},
            values=values
            or {
                "first_day": today.isoformat(),
                "last_day": (today + timedelta(days=6)).isoformat(),
                "policy": "steward",
                "daily_cap_points": "500",
            },
            errors=errors or {},
            last_day=lambda campaign: campaign.ends_at - timedelta(seconds=1),
            expires_at=expires_at,
        )

    @get("/")
    async def campaign_list(self, request: Request[Identity, Token, Any], db: DB) -> Template:
        return await self._list(request, db)

    @post("/")
    async def create(self, request: Request[Identity, Token, Any], db: DB) -> Response[Any]:
        _ = translator(request).gettext
        form = await request.form()
        values = {
            name: text(form, name, 100)
            for name in (
                "name",
                "first_day",
                "last_day",
                "policy",
                "daily_cap_points",
                "department_id",
                "points_expire_days",
            )
        }
        values["cartridges_remanufactured"] = text(form, "cartridges_remanufactured", 1)
        errors: dict[str, str] = {}
        first, last = parse_day(values["first_day"]), parse_day(values["last_day"])
        if first is None:
            errors["first_day"] = _("Enter a date.")
        if last is None:
            errors["last_day"] = _("Enter a date.")
        cap = values["daily_cap_points"]
        if whole_number(cap) is None:
            errors["daily_cap_points"] = _("Enter a whole number of points.")
        expire_days = whole_number(values["points_expire_days"])
        if values["points_expire_days"] and expire_days is None:
            errors["points_expire_days"] = campaign_rule(request, "points_expire_days")
        if not errors and first and last:
            try:
                async with savepoint(db):
                    campaign = await campaigns.create_campaign(
                        db,
                        campaigns.NewCampaign(
                            name=values["name"],
                            starts_at=day_start(first),
                            ends_at=day_start(last + timedelta(days=1)),
                            policy=values["policy"],
                            daily_cap_points=whole_number(cap) or 0,
                            department_id=values["department_id"] or None,
                            cartridges_remanufactured=bool(values["cartridges_remanufactured"]),
                            points_expire_days=expire_days,
                        ),
                        request.user.user_id,
                    )
            except InvalidInput as error:
                field = {"starts_at": "first_day", "ends_at": "last_day"}.get(
                    error.field, error.field
                )
                errors[field] = campaign_rule(request, field)
            except CampaignOverlap:
                errors["first_day"] = _("This window overlaps another campaign of the same scope.")
            except NotFound:
                errors["department_id"] = _("Choose a department from the list.")
            else:
                return redirect(f"/admin/campaigns/{campaign.id}")
        return await self._list(request, db, values=values, errors=errors, status_code=422)

    @get("/{campaign_id:str}")
    async def rates(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        campaign_id: FromPath[str],
        changed: FromQuery[str | None] = None,
    ) -> Template:
        return await self._rates(request, db, campaign_id, changed=bool(changed))

    async def _rates(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        campaign_id: str,
        *,
        values: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        saved: bool = False,
        changed: bool = False,
        settings: dict[str, str] | None = None,
        setting_errors: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        campaign = await campaigns.get_campaign(db, campaign_id)
        last_day = campaign.ends_at - timedelta(seconds=1)
        current = {
            rate.category: str(rate.points) for rate in await campaigns.rates_of(db, campaign.id)
        }
        language = language_of(request)
        return page(
            request,
            "admin/rates.html",
            status_code=status_code,
            title=campaign.name,
            campaign=campaign,
            kinds=[
                {"code": k.code, "name": category_name(k, language), "weighed": k.unit is Unit.gram}
                for k in CATEGORIES.values()
            ],
            values=values if values is not None else current,
            errors=errors or {},
            saved=saved,
            changed=changed,
            last_day=last_day,
            expires_at=expires_at(campaign),
            settings=settings
            or {
                "last_day": local_time(last_day, "%Y-%m-%d"),
                "policy": campaign.policy,
                "daily_cap_points": str(campaign.daily_cap_points),
                "points_expire_days": ""
                if campaign.points_expire_days is None
                else str(campaign.points_expire_days),
            },
            setting_errors=setting_errors or {},
        )

    @post("/{campaign_id:str}/settings")
    async def change(
        self, request: Request[Identity, Token, Any], db: DB, campaign_id: FromPath[str]
    ) -> Response[Any]:
        """Extend or end a campaign early, or change its policy or cap."""
        _ = translator(request).gettext
        form = await request.form()
        settings = {
            name: text(form, name, 100)
            for name in ("last_day", "policy", "daily_cap_points", "points_expire_days")
        }
        errors: dict[str, str] = {}
        last = parse_day(settings["last_day"])
        cap = whole_number(settings["daily_cap_points"])
        expire_days = whole_number(settings["points_expire_days"])
        if last is None:
            errors["last_day"] = _("Enter a date.")
        if cap is None:
            errors["daily_cap_points"] = _("Enter a whole number of points.")
        if settings["points_expire_days"] and expire_days is None:
            errors["points_expire_days"] = campaign_rule(request, "points_expire_days")
        current = await campaigns.get_campaign(db, campaign_id)
        # Days typed: they replace an exact time set through the API. Empty: never, unless an
        # exact time is set (the page shows it and leaves it). Unchanged: left as it is.
        expiry: dict[str, Any] = {}
        if expire_days is not None and expire_days != current.points_expire_days:
            expiry = {"points_expire_days": expire_days, "points_expire_at": None}
        elif expire_days is None and current.points_expire_days is not None:
            expiry = {"points_expire_days": None}
        if not errors and last is not None:
            try:
                async with savepoint(db):
                    await campaigns.update_campaign(
                        db,
                        campaign_id,
                        campaigns.CampaignChanges(
                            ends_at=day_start(last + timedelta(days=1)),
                            policy=settings["policy"],
                            daily_cap_points=cap,
                            **expiry,
                        ),
                    )
            except InvalidInput as error:
                field = {"ends_at": "last_day", "points_expire_at": "points_expire_days"}.get(
                    error.field, error.field
                )
                errors[field] = campaign_rule(request, field)
            except CampaignOverlap:
                errors["last_day"] = _("This window overlaps another campaign of the same scope.")
            else:
                return redirect(f"/admin/campaigns/{campaign_id}?changed=1")
        return await self._rates(
            request, db, campaign_id, settings=settings, setting_errors=errors, status_code=422
        )

    @post("/{campaign_id:str}")
    async def save_rates(
        self, request: Request[Identity, Token, Any], db: DB, campaign_id: FromPath[str]
    ) -> Template:
        _ = translator(request).gettext
        form = await request.form()
        values = {code: text(form, code, 10) for code in CATEGORIES}
        errors: dict[str, str] = {}
        rates: dict[str, int] = {}
        for code, typed in values.items():
            if not typed:
                continue  # left empty: the campaign gives no points for it
            points = whole_number(typed)
            if points is None or not 1 <= points <= campaigns.MAX_RATE:
                errors[code] = _("A whole number of points, 1 to %(max)d.") % {
                    "max": campaigns.MAX_RATE
                }
            else:
                rates[code] = points
        if not errors:
            async with savepoint(db):
                await campaigns.set_rates(db, campaign_id, rates, request.user.user_id)
            return await self._rates(request, db, campaign_id, saved=True)
        return await self._rates(
            request, db, campaign_id, values=values, errors=errors, status_code=422
        )


def campaign_rule(request: Request[Any, Any, Any], field: str) -> str:
    _ = translator(request).gettext
    return {
        "name": _("Enter a name of 1–100 characters."),
        "last_day": _(
            "The last day must not be before the first, and a campaign lasts at most 366 days."
        ),
        "first_day": _("Enter a date."),
        "policy": _("Choose how drop-offs are confirmed."),
        "daily_cap_points": _("Enter a whole number of points, 1 to 1,000,000."),
        "points_expire_days": _(
            "A whole number of days, 0 to 3,650; the points of a campaign can no longer change "
            "their expiry once they have expired."
        ),
    }.get(field, _("Please check what you entered and try again."))
