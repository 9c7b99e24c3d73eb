"""What the report's charts show, in the reader's language; api/charts.py draws them.

The same charts go into the report page (SVG), the summary's picture choice and the Word
document (PNG), so their keys are the summary's chart picture references.
"""

from collections.abc import Sequence
from itertools import accumulate

from api.charts import Chart, Series
from api.i18n import translations
from exchange.categories import CATEGORIES
from exchange.reports import DepartmentRow, Report, format_rate


def report_charts(
    report: Report, language: str, departments: Sequence[DepartmentRow] = ()
) -> list[Chart]:
    """The department's three charts; with `departments`, also participation per department."""
    _ = translations(language).gettext
    days = tuple(d.day.strftime("%m-%d") for d in report.days)
    first, last = report.period.first_day.isoformat(), report.period.last_day.isoformat()
    per_day = tuple(d.dropoffs for d in report.days)
    busiest = max(range(len(per_day)), key=lambda i: per_day[i]) if per_day else None
    daily_description = _(
        "Drop-offs logged on each day from %(first)s to %(last)s: %(total)d in all."
    ) % {"first": first, "last": last, "total": sum(per_day)}
    if busiest is not None and per_day[busiest]:
        daily_description += " " + _("The busiest day was %(day)s with %(count)d.") % {
            "day": report.days[busiest].day.isoformat(),
            "count": per_day[busiest],
        }
    dropoffs = _("Drop-offs logged")
    charts = [
        Chart(
            key="daily",
            title=_("Drop-offs per day"),
            description=daily_description,
            kind="bars",
            label_heading=_("Day"),
            labels=days,
            series=(Series(dropoffs, per_day, tuple(f"{n:,}" for n in per_day)),),
            axis_label=dropoffs,
        )
    ]

    names = tuple(
        CATEGORIES[c.category].name_zh if language == "zh" else CATEGORIES[c.category].name_en
        for c in report.categories
    )
    counts = tuple(c.count for c in report.categories)
    mix = ", ".join(f"{name} {count}" for name, count in zip(names, counts, strict=True) if count)
    charts.append(
        Chart(
            key="categories",
            title=_("Category mix"),
            description=_("Confirmed drop-offs by category: %(mix)s.")
            % {"mix": mix or _("none yet")},
            kind="hbars",
            label_heading=_("Category"),
            labels=names,
            series=(Series(_("Confirmed drop-offs"), counts, tuple(f"{n:,}" for n in counts)),),
            axis_label=_("Confirmed drop-offs"),
        )
    )

    issued = tuple(accumulate(d.points_issued for d in report.days))
    spent = tuple(accumulate(d.points_spent for d in report.days))
    charts.append(
        Chart(
            key="points",
            title=_("Points issued and spent (cumulative)"),
            description=_(
                "Running totals from %(first)s to %(last)s: %(issued)d points issued and "
                "%(spent)d spent by the end."
            )
            % {
                "first": first,
                "last": last,
                "issued": issued[-1] if issued else 0,
                "spent": spent[-1] if spent else 0,
            },
            kind="lines",
            label_heading=_("Day"),
            labels=days,
            series=(
                Series(_("Issued"), issued, tuple(f"{n:,}" for n in issued)),
                Series(_("Spent"), spent, tuple(f"{n:,}" for n in spent)),
            ),
            axis_label=_("Points"),
        )
    )

    if departments:
        rows = sorted(departments, key=lambda d: (-d.rate_permille, d.name))
        charts.append(
            Chart(
                key="participation",
                title=_("Participation rate per department"),
                description=_(
                    "Share of each department's members with a confirmed drop-off; "
                    "highest: %(name)s, %(rate)s."
                )
                % {"name": rows[0].name, "rate": format_rate(rows[0].rate_permille)},
                kind="hbars",
                label_heading=_("Department"),
                labels=tuple(d.name for d in rows),
                series=(
                    Series(
                        _("Participation rate (%)"),
                        tuple(d.rate_permille / 10 for d in rows),
                        tuple(format_rate(d.rate_permille) for d in rows),
                    ),
                ),
                axis_label=_("Participation rate (%)"),
            )
        )
    return charts
