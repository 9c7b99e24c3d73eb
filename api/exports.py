"""Spreadsheet exports (CSV and XLSX) of plain tables, safe to open in Excel and WPS, and the
tables a report exports (one per sheet).

A text cell beginning with ``= + - @`` (or a tab or carriage return) would be read as a
formula by a spreadsheet, so ``neutralise`` prefixes it with an apostrophe (OWASP's advice
for CSV injection). Numbers stay numbers. Every export goes through this module.
"""

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass

from exchange import reports

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"  # so Excel and WPS read the CSV as UTF-8, Chinese included


@dataclass(frozen=True)
class ReportTable:
    name: str  # also the XLSX sheet name: at most 31 characters
    header: tuple[str, ...]
    rows: tuple[tuple[str | int, ...], ...]


def neutralise(value: str | int | None) -> str | int:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def csv_bytes(tables: Iterable[ReportTable]) -> bytes:
    """The tables one after another, each as its name, its header and its rows, with a blank
    line between them; UTF-8 with a byte-order mark."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    for number, table in enumerate(tables):
        if number:
            writer.writerow([])
        writer.writerow([neutralise(table.name)])
        writer.writerow([neutralise(cell) for cell in table.header])
        writer.writerows([neutralise(cell) for cell in row] for row in table.rows)
    return (BOM + buffer.getvalue()).encode("utf-8")


def xlsx_bytes(tables: Iterable[ReportTable]) -> bytes:
    """One sheet per table, named after it. CPU work: call it off the event loop."""
    # Imported here: openpyxl takes a tenth of a second to import, paid otherwise by every
    # process start (api/charts.py imports matplotlib the same way).
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    def _xlsx_cell(value: str | int | None) -> str | int:
        # XML cannot carry most control characters; openpyxl refuses them rather than drop them.
        cell = neutralise(value)
        return ILLEGAL_CHARACTERS_RE.sub("", cell) if isinstance(cell, str) else cell

    workbook = Workbook()
    workbook.remove(workbook.active)  # type: ignore[arg-type]
    for table in tables:
        sheet = workbook.create_sheet(title=table.name[:31])
        sheet.append([_xlsx_cell(cell) for cell in table.header])
        for row in table.rows:
            sheet.append([_xlsx_cell(cell) for cell in row])
        sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# --- a report's tables, in the order an export writes them -------------------------------------


def _quantity_text(unit: str, quantity: int) -> str:
    return reports.format_kg(quantity) if unit == reports.PAPER_UNIT else str(quantity)


def _factor_table(factors: reports.FactorSet) -> ReportTable:
    return ReportTable(
        "co2e_factors",
        (
            "factor_set",
            "category",
            "valid_from",
            "grams_co2e_avoided",
            "per",
            "baseline",
            "applies_to",
            "publication",
            "version",
            "table_or_exhibit",
            "page",
            "url",
            "to_confirm",
            "note",
        ),
        tuple(
            (
                factors.id,
                f.category,
                f.valid_from.isoformat(),
                "" if f.grams is None else f.grams,
                f.basis,
                f.baseline,
                f.applies_to,
                f.publication,
                f.version,
                f.exhibit,
                f.page,
                f.url,
                "yes" if f.to_confirm else "no",
                f.note_en,
            )
            for f in factors.factors
        ),
    )


def report_tables(report: reports.Report) -> list[ReportTable]:
    """The report as plain tables, in the order an export writes them."""
    p, part, period = report.points, report.participation, report.period
    summary = ReportTable(
        "summary",
        ("figure", "value"),
        (
            ("department_id", report.department_id or "platform"),
            ("campaign", period.campaign_name or ""),
            ("from", period.first_day.isoformat()),
            ("to", period.last_day.isoformat()),
            ("paper_kg", reports.format_kg(report.paper_grams)),
            ("items", report.items),
            ("members", part.members),
            ("participants", part.participants),
            ("participation_rate", reports.format_rate(part.rate_permille)),
            ("employees_who_ordered", part.ordered),
            ("points_issued", p.issued),
            ("points_pending", p.pending),
            ("points_rejected", p.rejected),
            ("points_spent", p.spent),
            ("points_held_at_end", p.held),
            ("points_released", p.released),
            ("points_expired", p.expired),
            ("points_outstanding_at_end", p.outstanding),
            ("value_to_villages_yuan", reports.format_yuan(report.value_fen)),
            ("co2e_avoided_kg", reports.format_kg(report.co2e_grams)),
            ("co2e_factor_set", report.factor_set.id),
            ("generated_at", report.generated_at.isoformat()),
        ),
    )
    tables = [
        summary,
        ReportTable(
            "dropoffs_by_status",
            ("status", "dropoffs", "points"),
            tuple((s.status, s.count, s.points) for s in report.dropoffs_by_status),
        ),
        ReportTable(
            "categories",
            ("category", "unit", "quantity", "dropoffs", "points", "co2e_avoided_kg"),
            tuple(
                (
                    c.category,
                    "kg" if c.unit == reports.PAPER_UNIT else "item",
                    _quantity_text(c.unit, c.quantity),
                    c.count,
                    c.points,
                    "" if c.co2e_grams is None else reports.format_kg(c.co2e_grams),
                )
                for c in report.categories
            ),
        ),
    ]
    if report.department_id is not None:
        tables.append(
            ReportTable(
                "collection_points",
                ("station_id", "name", "dropoffs", "confirmed", "paper_kg", "items", "points"),
                tuple(
                    (
                        s.station_id,
                        s.name,
                        s.dropoffs,
                        s.confirmed,
                        reports.format_kg(s.paper_grams),
                        s.items,
                        s.points,
                    )
                    for s in report.stations
                ),
            )
        )
    tables += [
        ReportTable(
            "days",
            (
                "day",
                "dropoffs",
                "confirmed",
                "paper_kg",
                "items",
                "points_issued",
                "points_spent",
                "first_time_participants",
            ),
            tuple(
                (
                    d.day.isoformat(),
                    d.dropoffs,
                    d.confirmed,
                    reports.format_kg(d.paper_grams),
                    d.items,
                    d.points_issued,
                    d.points_spent,
                    d.first_time,
                )
                for d in report.days
            ),
        ),
        ReportTable(
            "orders_by_status",
            ("status", "orders", "points"),
            tuple((s.status, s.count, s.points) for s in report.orders_by_status),
        ),
        ReportTable(
            "products_delivered",
            ("product_id", "name", "unit", "orders", "quantity", "points", "value_yuan"),
            tuple(
                (
                    r.product_id,
                    r.name,
                    r.unit,
                    r.orders,
                    r.quantity,
                    r.points,
                    reports.format_yuan(r.value_fen),
                )
                for r in report.products
            ),
        ),
        _factor_table(report.factor_set),
    ]
    return tables


def platform_tables(report: reports.PlatformReport) -> list[ReportTable]:
    departments = ReportTable(
        "departments",
        (
            "department_id",
            "name",
            "members",
            "participants",
            "participation_rate",
            "paper_kg",
            "items",
            "points_issued",
            "points_spent",
            "points_expired",
            "value_to_village_yuan",
            "co2e_avoided_kg",
        ),
        tuple(
            (
                r.department_id,
                r.name,
                r.members,
                r.participants,
                reports.format_rate(r.rate_permille),
                reports.format_kg(r.paper_grams),
                r.items,
                r.points_issued,
                r.points_spent,
                r.points_expired,
                reports.format_yuan(r.value_fen),
                reports.format_kg(r.co2e_grams),
            )
            for r in report.departments
        ),
    )
    tables = report_tables(report.totals)
    return [tables[0], departments, *tables[1:]]
