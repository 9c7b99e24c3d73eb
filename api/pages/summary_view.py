"""A summary as both the page and the API show it: the period's report, the saved text (or
a fresh draft), the chosen pictures and the uploaded photos."""

from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from api import charts
from api.pages.report_charts import report_charts
from catalog.identity import Identity
from catalog.models import Department
from exchange import reports, summaries
from exchange.models import Summary


@dataclass(frozen=True)
class SummaryView:
    scope: str  # a department id, or summaries.PLATFORM
    key: str
    report: reports.Report
    departments: tuple[reports.DepartmentRow, ...]
    subject: summaries.Subject
    text: str
    saved: Summary | None
    pictures: list[str]
    photos: list[summaries.PhotoInfo]

    @property
    def characters(self) -> int:
        return summaries.count_characters(self.text)

    def charts(self, language: str) -> list[charts.Chart]:
        return report_charts(self.report, language, self.departments)


async def load(
    session: AsyncSession,
    caller: Identity,
    department: Department | None,
    period: reports.Period,
    language: str,
) -> SummaryView:
    """`department` None: the platform's summary. A saved summary keeps the CO2e factor set
    it was saved with."""
    scope = department.id if department else summaries.PLATFORM
    key = summaries.period_key(period)
    saved = await summaries.get_summary(session, scope, key)
    factors = saved.co2e_factor_set if saved else None
    departments: tuple[reports.DepartmentRow, ...] = ()
    if department is None:
        subject = summaries.PLATFORM_SUBJECT[language]
        platform = await reports.platform_report(session, period, factor_set=factors)
        report, departments = platform.totals, platform.departments
    else:
        subject = summaries.Subject(department.name, department.village_name)
        report = await reports.department_report(
            session, caller, department.id, period, factor_set=factors
        )
    return SummaryView(
        scope=scope,
        key=key,
        report=report,
        departments=departments,
        subject=subject,
        text=saved.text if saved else summaries.compose_draft(report, subject, language),
        saved=saved,
        pictures=summaries.picture_refs(saved)
        if saved
        else [f"chart:{c}" for c in summaries.chart_keys(scope)][: summaries.MAX_PICTURES],
        photos=await summaries.list_photos(session, scope, key),
    )
