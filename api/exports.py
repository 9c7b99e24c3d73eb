"""Spreadsheet exports (CSV and XLSX) of plain tables, safe to open in Excel and WPS.

A text cell beginning with ``= + - @`` (or a tab or carriage return) would be read as a
formula by a spreadsheet, so ``neutralise`` prefixes it with an apostrophe (OWASP's advice
for CSV injection). Numbers stay numbers. Every export goes through this module.
"""

import csv
import io
from collections.abc import Iterable, Sequence

from openpyxl import Workbook

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"  # so Excel and WPS read the CSV as UTF-8, Chinese included


class Table:
    """What an export writes: a named table with a header row. Anything with these three
    attributes will do (e.g. exchange.reports.ReportTable)."""

    name: str
    header: Sequence[str]
    rows: Sequence[Sequence[str | int]]


def neutralise(value: str | int | None) -> str | int:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def csv_bytes(tables: Iterable[Table]) -> bytes:
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


def xlsx_bytes(tables: Iterable[Table]) -> bytes:
    """One sheet per table, named after it. CPU work: call it off the event loop."""
    workbook = Workbook()
    workbook.remove(workbook.active)  # type: ignore[arg-type]
    for table in tables:
        sheet = workbook.create_sheet(title=table.name[:31])
        sheet.append([neutralise(cell) for cell in table.header])
        for row in table.rows:
            sheet.append([neutralise(cell) for cell in row])
        sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
