"""Spreadsheet exports: formula-looking text is neutralised, numbers stay numbers, and text a
spreadsheet cannot hold never breaks the export."""

import csv
import io
from dataclasses import dataclass

import openpyxl

from api.exports import csv_bytes, neutralise, xlsx_bytes


@dataclass
class Table:
    name: str
    header: tuple[str, ...]
    rows: tuple[tuple[str | int, ...], ...]


HOSTILE = Table(
    "products",
    ("name", "points"),
    (
        ('=HYPERLINK("http://evil")', 1),
        ("+1+2", -3),
        ("-2", 0),
        ("@SUM(A1)", 4),
        ("\tTAB", 5),
        ("\rCR", 6),
        ("大米\x01\x02", 7),
        ("plain", 8),
    ),
)


def test_cells_that_a_spreadsheet_would_run_as_formulas_are_neutralised() -> None:
    assert [neutralise(row[0]) for row in HOSTILE.rows] == [
        "'=HYPERLINK(\"http://evil\")", "'+1+2", "'-2", "'@SUM(A1)", "'\tTAB", "'\rCR",
        "大米\x01\x02", "plain",
    ]  # fmt: skip
    assert neutralise(-3) == -3 and neutralise(None) == ""


def test_csv_and_xlsx_carry_the_neutralised_text_and_the_numbers() -> None:
    data = csv_bytes([HOSTILE])
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[0] == ["products"] and rows[1] == ["name", "points"]
    assert [row[0] for row in rows[2:]][:6] == [
        "'=HYPERLINK(\"http://evil\")", "'+1+2", "'-2", "'@SUM(A1)", "'\tTAB", "'\rCR",
    ]  # fmt: skip
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx_bytes([HOSTILE])))["products"]
    values = list(sheet.iter_rows(min_row=2, values_only=True))
    assert values[0] == ('\'=HYPERLINK("http://evil")', 1)
    assert values[1] == ("'+1+2", -3)
    assert values[6] == ("大米", 7)  # control characters XML cannot hold are dropped
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
