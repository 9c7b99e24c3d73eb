"""Report pages: what a department, or the whole platform, achieved in a period.

`/coord/report` (the coordinator's department), `/audit/report` (a department auditor's own;
a platform auditor picks one, or the whole platform) and `/admin/report` (the platform, or
one department). A period picker (a campaign, this week, custom dates), figure cards, the
charts drawn on the server with their numbers as tables, and the CO2e factors with their
sources. Prints on A4.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Request, get, post
from litestar.params import QueryParameter
from litestar.response import Response, Template
from litestar.security.jwt import Token
from markupsafe import Markup

from api import charts
from api.auth import requires
from api.deadlines import REPORT_DEADLINE
from api.pages.employee import category_name
from api.pages.forms import savepoint, text
from api.pages.rendering import language_of, page, redirect, translator
from api.pages.report_charts import report_charts
from api.pages.templating import SHANGHAI
from api.params import DB, PERIOD, AskedPeriod, PeriodQuery
from catalog import departments
from catalog.identity import Identity
from catalog.models import Department, Role
from catalog.paging import MAX_LIMIT
from exchange import campaigns, reports, summaries
from exchange.categories import CATEGORIES, Unit
from exchange.errors import ExchangeError, InvalidInput, NotFound
from exchange.reports import co2e

Chosen = Annotated[str | None, QueryParameter(max_length=64)]


@dataclass(frozen=True)
class PeriodChoice:
    """What the period picker sent, the period it resolved to, and what to offer."""

    campaign: str
    date_from: str
    date_to: str
    period: reports.Period | None
    error: str | None
    campaigns: list[Any]

    @property
    def query(self) -> dict[str, str]:
        """The period as query parameters, for links to other formats and pages."""
        if self.period is None:
            return {}
        if self.period.campaign_id:
            return {"campaign": self.period.campaign_id}
        return {"from": self.period.first_day.isoformat(), "to": self.period.last_day.isoformat()}


def this_week(today: date) -> tuple[str, str]:
    """Monday of this week (Asia/Shanghai) to today."""
    return (today - timedelta(days=today.weekday())).isoformat(), today.isoformat()


def this_week_days() -> tuple[str, str]:
    return this_week(datetime.now(SHANGHAI).date())


async def choose_period(
    request: Request[Any, Any, Any], db: DB, department_id: str | None, asked: PeriodQuery
) -> PeriodChoice:
    """The period asked for; with nothing asked, the latest campaign that has begun, or
    this week. A bad choice comes back as a message for the picker, not an error page."""
    _ = translator(request).gettext
    campaign, date_from, date_to = asked.campaign, asked.date_from, asked.date_to
    listing = await campaigns.list_campaigns(db, department_id, limit=MAX_LIMIT, after=None)
    offered = sorted(listing.items, key=lambda c: c.starts_at, reverse=True)
    now = datetime.now(SHANGHAI)
    if not (campaign or date_from or date_to):
        begun = [c for c in offered if c.starts_at <= now]
        if begun:
            campaign = begun[0].id
        else:
            date_from, date_to = this_week(now.date())
    period, error = None, None
    try:
        period = await PeriodQuery(campaign, date_from, date_to).resolve(db, department_id)
    except InvalidInput as refused:
        error = {
            "campaign": _("Choose a campaign, or dates, not both."),
            "to": _(
                "The last day must not be before the first, and a report covers at most 366 days."
            ),
        }.get(refused.field, _("Enter both dates as YYYY-MM-DD, or choose a campaign."))
    except ExchangeError:
        error = _("There is no such campaign.")
    return PeriodChoice(
        campaign=campaign or "",
        date_from=date_from or "",
        date_to=date_to or "",
        period=period,
        error=error,
        campaigns=offered,
    )


@dataclass(frozen=True)
class ShownChart:
    chart: charts.Chart
    svg: Markup


async def drawn(chart_list: list[charts.Chart]) -> list[ShownChart]:
    svgs = await charts.svgs(chart_list)
    # The SVG is our own drawing, every text in it escaped by ElementTree.
    return [ShownChart(c, Markup(s)) for c, s in zip(chart_list, svgs, strict=True)]


def category_rows(report: reports.Report, language: str) -> list[dict[str, Any]]:
    rows = []
    for row in report.categories:
        kind = CATEGORIES[row.category]
        factor = report.factor_set.for_period(row.category, report.period.last_day)
        rows.append(
            {
                "name": category_name(kind, language),
                "weighed": kind.unit is Unit.gram,
                "quantity": reports.format_kg(row.quantity)
                if kind.unit is Unit.gram
                else f"{row.quantity:,}",
                "count": row.count,
                "points": row.points,
                "co2e": None if row.co2e_grams is None else reports.format_kg(row.co2e_grams),
                "to_confirm": bool(factor and factor.to_confirm and row.co2e_grams),
            }
        )
    return rows


def factor_rows(report: reports.Report, language: str) -> list[dict[str, Any]]:
    """The factors the report used: those in force on its last day, in category order."""
    last_day = report.period.last_day
    return [
        {
            "name": category_name(CATEGORIES[f.category], language),
            "factor": f,
            "note": f.note(language),
        }
        for f in report.factor_set.factors
        if report.factor_set.for_period(f.category, last_day) == f
    ]


def department_columns(request: Request[Any, Any, Any]) -> list[tuple[str, str, bool]]:
    """The platform table's columns: sort key, heading, whether it holds numbers."""
    _ = translator(request).gettext
    return [
        ("name", _("Department"), False),
        ("members", _("Members"), True),
        ("participants", _("Taking part"), True),
        ("rate_permille", _("Participation rate"), True),
        ("paper_grams", _("kg of paper"), True),
        ("items", _("Cartridges and devices"), True),
        ("points_issued", _("Points issued"), True),
        ("points_spent", _("Points spent"), True),
        ("points_expired", _("Points expired"), True),
        ("value_fen", _("Yuan for the village"), True),
        ("co2e_grams", _("kg CO2e avoided"), True),
    ]


class ReportPages(Controller):
    include_in_schema = False
    opt = REPORT_DEADLINE
    dependencies = {"period": PERIOD}

    @get("/coord/report", guards=[requires(Role.coordinator)])
    async def coordinator(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        period: AskedPeriod,
    ) -> Template:
        department = await departments.get_department(
            db, request.user, request.user.department_id or ""
        )
        return await self._show(request, db, "/coord/report", department, [], period)

    @get("/audit/report", guards=[requires(Role.auditor)])
    async def auditor(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        period: AskedPeriod,
        department: Chosen = None,
    ) -> Template:
        return await self._chosen(request, db, "/audit/report", department, period)

    @get("/admin/report", guards=[requires(Role.admin)])
    async def admin(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        period: AskedPeriod,
        department: Chosen = None,
        sort: Chosen = None,
        desc: Chosen = None,
    ) -> Template:
        return await self._chosen(request, db, "/admin/report", department, period, sort, desc)

    async def _chosen(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        here: str,
        chosen: str | None,
        period: AskedPeriod,
        sort: str | None = None,
        desc: str | None = None,
    ) -> Template:
        """A department's auditor sees their own; platform staff pick one or the platform."""
        visible = await departments.list_departments(db, request.user, limit=MAX_LIMIT, after=None)
        if not request.user.is_platform:
            chosen = request.user.department_id
        department = await departments.get_department(db, request.user, chosen) if chosen else None
        return await self._show(
            request,
            db,
            here,
            department,
            visible.items if request.user.is_platform else [],
            period,
            sort,
            desc,
        )

    async def _show(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        here: str,
        department: Department | None,
        choices: list[Department],
        period: AskedPeriod,
        sort: str | None = None,
        desc: str | None = None,
    ) -> Template:
        _ = translator(request).gettext
        language = language_of(request)
        scope_id = department.id if department else None
        choice = await choose_period(request, db, scope_id, period)
        report = platform = None
        shown: list[ShownChart] = []
        sort_key = sort if sort in reports.DEPARTMENT_SORT_KEYS else "name"
        descending = desc == "1"
        if choice.period is not None:
            if department is not None:
                report = await reports.department_report(
                    db, request.user, department.id, choice.period
                )
                shown = await drawn(report_charts(report, language))
            else:
                platform = await reports.platform_report(
                    db, choice.period, sort=sort_key, descending=descending
                )
                report = platform.totals
                shown = await drawn(report_charts(report, language, platform.departments))
        if department is not None:
            api = f"/api/departments/{department.id}/report"
        else:
            api = "/api/reports/platform"
        downloads = {
            fmt: f"{api}?{urlencode({**choice.query, 'format': fmt})}" for fmt in ("csv", "xlsx")
        }
        week_from, week_to = this_week_days()
        keep = {"department": department.id} if department is not None and choices else {}

        def sort_query(key: str) -> str:
            flip = key == sort_key and not descending
            return urlencode({**choice.query, "sort": key, **({"desc": "1"} if flip else {})})

        return page(
            request,
            "reports/report.html",
            status_code=422 if choice.error else 200,
            title=_("Report"),
            action=here,
            period_label=summaries.period_text(choice.period, language) if choice.period else "",
            rate=reports.format_rate,
            week_query=urlencode({**keep, "from": week_from, "to": week_to}),
            sort_query=sort_query,
            department_query=lambda d: urlencode({**choice.query, "department": d}),
            department_columns=department_columns(request),
            department=department,
            departments=choices,
            choice=choice,
            report=report,
            platform=platform,
            charts=shown,
            categories=category_rows(report, language) if report else [],
            factors=factor_rows(report, language) if report else [],
            factor_set=report.factor_set if report else None,
            downloads=downloads,
            sort=sort_key,
            descending=descending,
            summary_link=self._summary_link(request, department, choice),
        )

    def _summary_link(
        self,
        request: Request[Identity, Token, Any],
        department: Department | None,
        choice: PeriodChoice,
    ) -> str | None:
        if choice.period is None:
            return None
        if (
            request.user.has(Role.coordinator)
            and department
            and department.id == request.user.department_id
        ):
            return f"/coord/summary?{urlencode(choice.query)}"
        if request.user.has(Role.admin) and department is None:
            return f"/admin/summary?{urlencode(choice.query)}"
        return None


FACTOR_TEXTS = (
    "baseline",
    "publication",
    "version",
    "exhibit",
    "page",
    "url",
    "note_zh",
    "note_en",
)


def _factor_from_form(form: Any, n: int) -> co2e.Factor | None:
    """Row `n` of the factor form, or None when it is empty or marked for removal."""
    category = text(form, f"{n}-category", 32)
    if not category or text(form, f"{n}-remove", 1):
        return None
    grams_text = text(form, f"{n}-grams", 12)
    grams = int(grams_text) if grams_text.isdigit() else (None if not grams_text else -1)
    try:
        valid_from = date.fromisoformat(text(form, f"{n}-valid_from", 10))
    except ValueError:
        raise InvalidInput(f"factors[{n}].valid_from", "a day as YYYY-MM-DD") from None
    kind = CATEGORIES.get(category)
    return co2e.Factor(
        category=category,
        valid_from=valid_from,
        basis="kg" if kind and kind.unit is Unit.gram else "item",
        grams=grams,
        applies_to=text(form, f"{n}-applies_to", 16) or "all",
        to_confirm=bool(text(form, f"{n}-to_confirm", 1)),
        **{name: text(form, f"{n}-{name}", co2e.TEXT_LIMITS[name] + 1) for name in FACTOR_TEXTS},
    )


class Co2eFactorPages(Controller):
    """`/admin/co2e-factors`: the factors as a form (saving makes a new set), and the sets
    before it with who made them and when."""

    path = "/admin/co2e-factors"
    guards = [requires(Role.admin)]
    include_in_schema = False

    async def _show(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        shown: co2e.FactorSet,
        *,
        rows: list[co2e.Factor] | None = None,
        error: str | None = None,
        saved: bool = False,
    ) -> Template:
        _ = translator(request).gettext
        history = await co2e.history(db)
        return page(
            request,
            "admin/co2e_factors.html",
            status_code=422 if error else 200,
            title=_("CO2e factors"),
            shown=shown,
            current=history[0].id == shown.id,
            rows=rows if rows is not None else list(shown.factors),
            history=history,
            categories=[
                (code, category_name(kind, language_of(request)))
                for code, kind in CATEGORIES.items()
            ],
            error=error,
            saved=saved,
        )

    @get("/")
    async def factors(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        factor_set: Annotated[str | None, QueryParameter(name="set", max_length=32)] = None,
        saved: Chosen = None,
    ) -> Template:
        try:
            shown = await co2e.factor_set(db, factor_set)
        except NotFound:
            shown = await co2e.current_set(db)
        return await self._show(request, db, shown, saved=bool(saved))

    @post("/")
    async def save(self, request: Request[Identity, Token, Any], db: DB) -> Response[Any]:
        _ = translator(request).gettext
        form = await request.form()
        count = min(int(text(form, "rows", 3) or 0), 100)
        try:
            rows = [f for n in range(count) if (f := _factor_from_form(form, n)) is not None]
            async with savepoint(db):
                await co2e.save_set(
                    db, rows, note=text(form, "note", 301), actor_id=request.user.user_id
                )
        except InvalidInput as refused:
            current = await co2e.current_set(db)
            message = _("Not saved: %(field)s must be %(rule)s.") % {
                "field": refused.field,
                "rule": refused.rule,
            }
            return await self._show(request, db, current, error=message)
        return redirect(f"{self.path}?saved=1")
