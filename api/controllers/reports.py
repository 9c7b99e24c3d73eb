"""Reports: what a department, or the whole platform, achieved in a period; as JSON, CSV
(UTF-8 with a BOM, formula cells neutralised) or XLSX (one sheet per table)."""

import asyncio
from datetime import date
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, put
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.security.jwt import Token

from api.auth import requires
from api.controllers.refusals import refusals
from api.deadlines import REPORT_DEADLINE
from api.exports import (
    CSV_MEDIA_TYPE,
    XLSX_MEDIA_TYPE,
    ReportTable,
    csv_bytes,
    platform_tables,
    report_tables,
    xlsx_bytes,
)
from api.params import DB, PERIOD, AskedPeriod
from catalog.identity import Identity
from catalog.models import Role
from exchange import reports
from exchange.reports import co2e

Format = Literal["json", "csv", "xlsx"]
SortKey = Literal[reports.DEPARTMENT_SORT_KEYS]  # type: ignore[valid-type]
FORMAT_QUERY = Annotated[
    Format | None,
    QueryParameter(
        name="format",
        description="json (default), csv or xlsx; without it, `Accept: text/csv` or the XLSX "
        "media type choose the format",
    ),
]
PERIOD_RULES = (
    "The period is `?campaign=<id>` or `?from=YYYY-MM-DD&to=YYYY-MM-DD` (Asia/Shanghai days, "
    f"inclusive, at most {reports.MAX_PERIOD_DAYS} days). Drop-off figures count drop-offs "
    "logged in the period; points issued, rejected, spent, released and expired count when "
    "the ledger moved them; held and outstanding are balances at the end of the period. "
    "Weights are grams, money is fen, CO2e is grams; `co2e_factors` gives every factor of the set "
    "`co2e_factor_set` the report was computed with, each with its source. "
    "CSV: UTF-8 with a byte-order mark, the tables one after another (name, header, rows, blank "
    "line); text cells beginning with = + - @ (or a tab or carriage return) are prefixed with "
    "an apostrophe. XLSX: one sheet per table."
)


class PeriodOut(msgspec.Struct):
    first_day: str
    last_day: str
    start: str
    end: str
    campaign_id: str | None
    campaign_name: str | None


class TotalsOut(msgspec.Struct):
    paper_grams: int
    paper_kg: str
    items: int
    value_fen: int
    co2e_grams: int


class ReportOut(msgspec.Struct):
    department_id: str | None
    period: PeriodOut
    totals: TotalsOut
    dropoffs_by_status: list[reports.StatusCount]
    categories: list[reports.CategoryRow]
    stations: list[reports.StationRow]
    days: list[reports.DayRow]
    participation: reports.Participation
    points: reports.PointsSummary
    orders_by_status: list[reports.StatusCount]
    products: list[reports.ProductRow]
    co2e_factor_set: str
    co2e_factors: list[reports.Factor]
    generated_at: str

    @classmethod
    def of(cls, report: reports.Report) -> "ReportOut":
        period = report.period
        return cls(
            department_id=report.department_id,
            period=PeriodOut(
                first_day=period.first_day.isoformat(),
                last_day=period.last_day.isoformat(),
                start=period.start.isoformat(),
                end=period.end.isoformat(),
                campaign_id=period.campaign_id,
                campaign_name=period.campaign_name,
            ),
            totals=TotalsOut(
                paper_grams=report.paper_grams,
                paper_kg=reports.format_kg(report.paper_grams),
                items=report.items,
                value_fen=report.value_fen,
                co2e_grams=report.co2e_grams,
            ),
            dropoffs_by_status=list(report.dropoffs_by_status),
            categories=list(report.categories),
            stations=list(report.stations),
            days=list(report.days),
            participation=report.participation,
            points=report.points,
            orders_by_status=list(report.orders_by_status),
            products=list(report.products),
            co2e_factor_set=report.factor_set.id,
            co2e_factors=list(report.factor_set.factors),
            generated_at=report.generated_at.isoformat(),
        )


class PlatformReportOut(msgspec.Struct):
    totals: ReportOut
    departments: list[reports.DepartmentRow]


def _format(request: Request[Identity, Token, Any], asked: Format | None) -> Format:
    if asked is not None:
        return asked
    best = request.accept.best_match(
        ["application/json", "text/csv", XLSX_MEDIA_TYPE], default="application/json"
    )
    return {"text/csv": "csv", XLSX_MEDIA_TYPE: "xlsx"}.get(best or "", "json")  # type: ignore[return-value]


async def _export(chosen: Format, tables: list[ReportTable], filename: str) -> Response[bytes]:
    if chosen == "csv":
        body, media_type = csv_bytes(tables), CSV_MEDIA_TYPE
    else:
        body, media_type = await asyncio.to_thread(xlsx_bytes, tables), XLSX_MEDIA_TYPE
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}.{chosen}"'},
    )


def _filename(prefix: str, period: reports.Period) -> str:
    return f"{prefix}-{period.first_day.isoformat()}-{period.last_day.isoformat()}"


class FactorIn(msgspec.Struct):
    category: str
    valid_from: date
    basis: Literal["kg", "item"]
    grams: Annotated[int, msgspec.Meta(ge=0, le=co2e.MAX_GRAMS)] | None = None
    baseline: str = ""
    applies_to: Literal["all", "remanufactured"] = "all"
    publication: str = ""
    version: str = ""
    exhibit: str = ""
    page: str = ""
    url: str = ""
    note_zh: str = ""
    note_en: str = ""
    to_confirm: bool = False


class FactorSetIn(msgspec.Struct):
    factors: Annotated[list[FactorIn], msgspec.Meta(max_length=100)]
    note: Annotated[str, msgspec.Meta(max_length=300)] = ""


class SetInfoOut(msgspec.Struct):
    id: str
    created_at: str
    created_by: str
    note: str


class FactorSetOut(msgspec.Struct):
    id: str
    created_at: str
    created_by: str
    note: str
    current: Annotated[bool, msgspec.Meta(description="the set new reports use")]
    factors: list[co2e.Factor]
    history: Annotated[list[SetInfoOut], msgspec.Meta(description="every set, newest first")]


async def _factor_set_out(db: DB, found: co2e.FactorSet) -> FactorSetOut:
    history = await co2e.history(db)
    return FactorSetOut(
        id=found.id,
        created_at=found.created_at.isoformat(),
        created_by=found.created_by,
        note=found.note,
        current=bool(history) and history[0].id == found.id,
        factors=list(found.factors),
        history=[SetInfoOut(h.id, h.created_at.isoformat(), h.created_by, h.note) for h in history],
    )


FACTOR_RULES = (
    "A factor gives the grams of CO2e one kilogram (`basis` kg: paper) or one item (`basis` "
    "item: the rest) of a category avoids against `baseline`, from `valid_from` on (a report "
    "uses the factor in force on its last day); `grams` null claims nothing. `applies_to` "
    "remanufactured counts only what campaigns marked `cartridges_remanufactured` collected. "
    "The source is `publication`, `version`, `exhibit` (table or exhibit), `page` and `url`; "
    "`to_confirm` marks a number not yet checked against it. Every change makes a new set; "
    "sets are never edited, so a report or summary naming its set can always be shown again."
)
REPORT_READERS = [requires(Role.coordinator, Role.admin, Role.auditor)]
PLATFORM_READERS = [requires(Role.admin, Role.auditor)]


class ReportController(Controller):
    tags = ["Reports"]
    opt = REPORT_DEADLINE
    dependencies = {"period": PERIOD}

    @get(
        "/api/departments/{department_id:str}/report",
        guards=REPORT_READERS,
        summary="A department's report for a campaign or a range of days",
        description="For the department's coordinators and auditors, and platform admins and "
        f"auditors. {PERIOD_RULES}",
        responses=refusals(
            _400="A query parameter is malformed or too long (format, campaign, from, to)",
            _401="Not signed in",
            _403="Employees and other roles without report access",
            _404="No such department (another department's is indistinguishable); no such campaign",
            _422="Invalid period (with `field`): neither a campaign nor from and to, both, a "
            "malformed date, to before from, or more than 366 days",
        ),
    )
    async def department_report(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        period: AskedPeriod,
        export_format: FORMAT_QUERY = None,
    ) -> ReportOut:
        resolved = await period.resolve(db, department_id)
        report = await reports.department_report(db, request.user, department_id, resolved)
        chosen = _format(request, export_format)
        if chosen != "json":
            filename = _filename(f"report-{department_id}", resolved)
            return await _export(chosen, report_tables(report), filename)  # type: ignore[return-value]
        return ReportOut.of(report)

    @get(
        "/api/reports/platform",
        guards=PLATFORM_READERS,
        summary="Every department side by side, and the platform's totals",
        description="For platform admins and platform auditors. One row per department "
        "(members, participants, participation rate in per mille, grams of paper, items, points "
        "issued, spent and expired, value to the village in fen, grams of CO2e), sorted by `sort` "
        f"(default name) in `order` (asc or desc). {PERIOD_RULES}",
        responses=refusals(
            _400="A query parameter is malformed or too long (format, sort, order, campaign, "
            "from, to)",
            _401="Not signed in",
            _403="Not platform staff: department roles, employees",
            _404="No such campaign",
            _422="Invalid period (with `field`)",
        ),
    )
    async def platform_report(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        period: AskedPeriod,
        export_format: FORMAT_QUERY = None,
        sort: Annotated[SortKey, QueryParameter(description="the column to sort by")] = "name",
        order: Annotated[Literal["asc", "desc"], QueryParameter()] = "asc",
    ) -> PlatformReportOut:
        if not request.user.is_platform:
            raise PermissionDeniedException("The platform report is for platform staff.")
        resolved = await period.resolve(db, None)
        report = await reports.platform_report(db, resolved, sort=sort, descending=order == "desc")
        chosen = _format(request, export_format)
        if chosen != "json":
            filename = _filename("platform-report", resolved)
            return await _export(chosen, platform_tables(report), filename)  # type: ignore[return-value]
        return PlatformReportOut(ReportOut.of(report.totals), list(report.departments))

    @get(
        "/api/co2e-factors",
        guards=[requires(*Role)],
        summary="The CO2e factors reports use, with their sources, and every earlier set",
        description=f"For everyone signed in. `?set=<id>` for an earlier set. {FACTOR_RULES}",
        responses=refusals(_401="Not signed in", _404="No such factor set"),
    )
    async def co2e_factors(
        self,
        db: DB,
        factor_set: Annotated[
            str | None, QueryParameter(name="set", max_length=32, description="a factor set's id")
        ] = None,
    ) -> FactorSetOut:
        return await _factor_set_out(db, await co2e.factor_set(db, factor_set))

    @put(
        "/api/co2e-factors",
        guards=[requires(Role.admin)],
        summary="Replace the CO2e factors: a new set, the earlier ones kept",
        description="For platform admins. The body lists every factor of the new set. "
        + FACTOR_RULES,
        responses=refusals(
            _400="The body is not JSON of this shape",
            _401="Not signed in",
            _403="Not a platform admin",
            _422="A factor breaks a rule (with `field`): unknown category, basis other than the "
            "category's unit, grams out of range, day outside 2000-2099, text too long, a URL "
            "that is not http(s), or two factors for one category and day",
        ),
    )
    async def replace_co2e_factors(
        self, request: Request[Identity, Token, Any], db: DB, data: JSONBody[FactorSetIn]
    ) -> FactorSetOut:
        if not request.user.is_platform:
            raise PermissionDeniedException("CO2e factors are set by the platform's admins.")
        saved = await co2e.save_set(
            db,
            [co2e.Factor(**msgspec.structs.asdict(f)) for f in data.factors],
            note=data.note,
            actor_id=request.user.user_id,
        )
        return await _factor_set_out(db, saved)
