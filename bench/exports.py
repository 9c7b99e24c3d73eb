"""How long the largest exports a request builds take at their largest realistic sizes: the
report's CSV and XLSX (a department-year, and a platform of 300 departments), the charts a
summary may show, drawn as PNG, and the summary's Word document with its six pictures (the
three charts and three 2 MB photos, or six photos). They run inside a
request (the report deadline, 30 s), so they must stay within a second or two; the member
import, which does not, is a job.

    uv run python bench/exports.py --runs 5

A report reads rollups, so its tables are as long as the period has days, categories,
collection points and products, whatever the number of drop-offs: a year is 366 days. The
tables are built here as the exports write them (api/exports.py), with that many rows.
"""

import argparse
import asyncio
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# The project's root instead of bench/, whose http.py would stand in for the standard library's.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from PIL import Image  # noqa: E402

from api import charts  # noqa: E402
from api.exports import ReportTable, csv_bytes, xlsx_bytes  # noqa: E402
from api.pages.summary_document import Contents, Picture, build  # noqa: E402

DAYS = 366
DEPARTMENTS = 300
PLATFORM_CHART_DEPARTMENTS = 100


def department_year() -> list[ReportTable]:
    day = ("2025-01-01", 550, 510, "120.500", 300, 61_000, 40_000, 12)
    return [
        ReportTable("summary", ("figure", "value"), tuple((f"figure_{n}", n) for n in range(21))),
        ReportTable("categories", ("category", "quantity"), tuple((f"c{n}", n) for n in range(6))),
        ReportTable(
            "collection_points", ("id", "name"), tuple((f"s{n}", "一楼") for n in range(10))
        ),
        ReportTable("days", tuple(f"h{n}" for n in range(8)), (day,) * DAYS),
        ReportTable(
            "products_delivered", ("id", "name"), tuple((f"p{n}", "大米") for n in range(20))
        ),
    ]


def platform() -> list[ReportTable]:
    row = (
        "01a2b3c4d5e6f7a8b9c0d1",
        "平江县某局",
        200,
        150,
        "75.0%",
        "1200.000",
        3000,
        61_000,
        40_000,
        "4000.00",
        "800.000",
    )
    return [ReportTable("departments", tuple(f"h{n}" for n in range(11)), (row,) * DEPARTMENTS)]


def series(name: str, values: tuple[float, ...]) -> charts.Series:
    return charts.Series(name, values, tuple(f"{v:,.0f}" for v in values))


def year_charts() -> list[charts.Chart]:
    """A department-year's three charts as api/pages/report_charts.py makes them: drop-offs
    per day (366 bars), the category mix, points issued and spent (two lines of 366)."""
    days = tuple(f"{1 + n // 31:02d}-{1 + n % 28:02d}" for n in range(DAYS))
    per_day = tuple(float(n % 97) for n in range(DAYS))
    running = tuple(float(n * 150) for n in range(DAYS))
    categories = ("废纸", "墨盒", "硒鼓", "手机", "充电线", "键鼠")
    return [
        charts.Chart("daily", "每日投递", "", "bars", "日期", days, (series("投递", per_day),)),
        charts.Chart(
            "categories", "品类", "", "hbars", "品类", categories, (series("投递", (5.0,) * 6),)
        ),
        charts.Chart(
            "points",
            "积分",
            "",
            "lines",
            "日期",
            days,
            (series("发放", running), series("兑换", running)),
        ),
    ]


def participation_chart() -> charts.Chart:
    """The platform's participation per department, one bar each."""
    names = tuple(f"某某局{n}" for n in range(PLATFORM_CHART_DEPARTMENTS))
    rates = tuple(float(n % 100) for n in range(PLATFORM_CHART_DEPARTMENTS))
    return charts.Chart(
        "participation", "参与率", "", "hbars", "部门", names, (series("%", rates),)
    )


def draw(to_draw: list[charts.Chart]) -> list[bytes]:
    charts.png.cache_clear()  # drawn anew, as a report with new figures is
    return asyncio.run(charts.pngs(to_draw))


def photo() -> bytes:
    """A 2400×1800 JPEG of noise, about as large as an upload may be (2 MB)."""
    image = Image.frombytes("RGB", (2400, 1800), os.urandom(2400 * 1800 * 3))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=60)
    return out.getvalue()


def document(pictures: list[bytes]) -> bytes:
    return build(
        Contents(
            text="总结\n" + "本次活动共回收废纸和硒鼓。" * 150,
            figures=[(f"指标{n}", str(n)) for n in range(8)],
            figures_heading="数据",
            pictures=[Picture(p, "说明") for p in pictures],
        )
    )


def timed(runs: int, work: Callable[[], object]) -> tuple[float, float, float, int]:
    work()  # warm-up: imports, fonts
    seconds, size = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        out = work()
        seconds.append(time.perf_counter() - started)
        size = len(out) if isinstance(out, bytes) else sum(map(len, out))  # type: ignore[arg-type]
    return statistics.median(seconds), min(seconds), max(seconds), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    year, plat, department_charts = department_year(), platform(), year_charts()
    platform_chart = [participation_chart()]
    photos = [photo() for _ in range(6)]
    drawn = draw(department_charts)
    cases: list[tuple[str, Callable[[], object]]] = [
        (f"report CSV, department-year ({DAYS} days)", lambda: csv_bytes(year)),
        (f"report XLSX, department-year ({DAYS} days)", lambda: xlsx_bytes(year)),
        (f"report CSV, platform ({DEPARTMENTS} departments)", lambda: csv_bytes(plat)),
        (f"report XLSX, platform ({DEPARTMENTS} departments)", lambda: xlsx_bytes(plat)),
        ("a department-year's 3 charts drawn as PNG", lambda: draw(department_charts)),
        (
            f"participation chart, {PLATFORM_CHART_DEPARTMENTS} departments, PNG",
            lambda: draw(platform_chart),
        ),
        ("summary .docx: the 3 charts (drawn) + 3 photos", lambda: document(drawn + photos[:3])),
        (f"summary .docx: 6 photos of {len(photos[0]) // 1024} KiB", lambda: document(photos)),
    ]
    print(f"{'export':<48} {'median ms':>10} {'min':>7} {'max':>7} {'bytes':>11}")
    for name, work in cases:
        median, low, high, size = timed(runs, work)
        print(
            f"{name:<48} {median * 1000:>10.0f} {low * 1000:>7.0f} {high * 1000:>7.0f} {size:>11,}"
        )
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
