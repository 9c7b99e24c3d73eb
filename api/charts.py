"""The report's charts, drawn on the server by one piece of code in two outputs.

matplotlib draws each chart once: as SVG for the page (text stays text, so it is
selectable, translatable and sharp in print) and as PNG for the Word summary. Chinese
labels need a CJK font; fontconfig names the one installed (Debian's fonts-noto-cjk).

The SVG goes inline into pages served under a strict Content-Security-Policy (no inline
styles), so matplotlib's `<style>` element and `style=""` attributes are rewritten into SVG
presentation attributes, which the policy does not touch. Each chart carries a title, a
description and its numbers as a table for screen readers and print.

Drawing is CPU work: it runs in a small thread pool, off the event loop, at most two at
a time (matplotlib's pyplot is not thread-safe; the object API used here is, per figure).
"""

import asyncio
import functools
import io
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import structlog

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = structlog.get_logger()

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)

COLOURS = ("#1d6b45", "#c2542d", "#3a6ea5", "#8a6d1f")
PNG_DPI = 200
# CSS properties matplotlib writes into style="" that have an SVG presentation attribute.
PRESENTATION = frozenset(
    {
        "clip-path",
        "clip-rule",
        "fill",
        "fill-opacity",
        "fill-rule",
        "font-family",
        "font-size",
        "font-style",
        "font-weight",
        "opacity",
        "stroke",
        "stroke-dasharray",
        "stroke-dashoffset",
        "stroke-linecap",
        "stroke-linejoin",
        "stroke-miterlimit",
        "stroke-opacity",
        "stroke-width",
        "text-anchor",
    }
)
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="charts")


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float, ...]
    shown: tuple[str, ...]  # the values as the table prints them


@dataclass(frozen=True)
class Chart:
    """What to draw, in the reader's language; `labels` run along the category axis."""

    key: str
    title: str
    description: str
    kind: Literal["bars", "hbars", "lines"]
    label_heading: str
    labels: tuple[str, ...]
    series: tuple[Series, ...]
    axis_label: str = ""

    @property
    def rows(self) -> list[tuple[str, ...]]:
        """The chart's numbers, one row per label: the table beside it."""
        return [(label, *(s.shown[i] for s in self.series)) for i, label in enumerate(self.labels)]


@functools.cache
def cjk_family() -> list[str]:
    """Font families to draw with: the CJK font fontconfig picks for Chinese, then a fallback."""
    try:
        found = subprocess.run(
            ["fc-match", "--format=%{family}\n%{file}", ":lang=zh-cn"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        found = []
    from matplotlib import font_manager

    if len(found) == 2 and found[1]:
        family, path = found[0].split(",")[0], found[1]
        font_manager.fontManager.addfont(path)  # in case matplotlib's own scan missed it
        if family in {f.name for f in font_manager.fontManager.ttflist}:
            return [family, "DejaVu Sans"]
    log.warning("no CJK font found through fontconfig; Chinese in charts will not render")
    return ["DejaVu Sans"]


@functools.cache
def _configure() -> None:
    """Once per process: rc_context would race between the pool's threads. matplotlib is
    imported here, on first use, so commands that draw nothing never pay for it."""
    import matplotlib

    matplotlib.rcParams.update(
        {
            "font.family": cjk_family(),
            "font.size": 10,
            "svg.fonttype": "none",  # text stays text in the SVG
            "svg.hashsalt": "cloud-exchange",  # stable ids: the same chart draws the same SVG
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )


def _figure(chart: Chart) -> "Figure":
    _configure()
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    height = 3.2 if chart.kind != "hbars" else max(2.4, 0.45 * len(chart.labels) + 1.2)
    figure = Figure(figsize=(7.2, height), layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(chart.title, loc="left", fontsize=11)
    positions = range(len(chart.labels))
    if chart.kind == "hbars":
        for s, colour in zip(chart.series, COLOURS, strict=False):
            axes.barh(list(positions), s.values, color=colour, label=s.name)
        axes.set_yticks(list(positions), chart.labels)
        axes.invert_yaxis()
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel(chart.axis_label)
    else:
        width = 0.8 / max(1, len(chart.series))
        for n, (s, colour) in enumerate(zip(chart.series, COLOURS, strict=False)):
            if chart.kind == "lines":
                axes.plot(list(positions), s.values, color=colour, label=s.name, linewidth=2)
            else:
                offset = (n - (len(chart.series) - 1) / 2) * width
                axes.bar(
                    [p + offset for p in positions],
                    s.values,
                    width=width,
                    color=colour,
                    label=s.name,
                )
        step = max(1, len(chart.labels) // 10)  # at most ~10 dates along the axis
        ticks = list(positions)[::step]
        axes.set_xticks(ticks, [chart.labels[i] for i in ticks])
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(chart.axis_label)
        axes.set_ylim(bottom=0)
        if len(ticks) > 6:
            for label in axes.get_xticklabels():
                label.set_rotation(30)
                label.set_horizontalalignment("right")
    if len(chart.series) > 1:
        axes.legend(frameon=False)
    axes.grid(axis="x" if chart.kind == "hbars" else "y", color="#dddddd", linewidth=0.6)
    axes.set_axisbelow(True)
    return figure


@functools.lru_cache(maxsize=32)  # the same figures draw the same picture
def png(chart: Chart) -> bytes:
    """The chart as a PNG (for the Word document), at print resolution."""
    buffer = io.BytesIO()
    _figure(chart).savefig(buffer, format="png", dpi=PNG_DPI, metadata={"Software": None})
    return buffer.getvalue()


@functools.lru_cache(maxsize=128)
def svg(chart: Chart) -> str:
    """The chart as inline SVG: titled, described, CSP-safe, ids unique to this chart."""
    buffer = io.BytesIO()
    _figure(chart).savefig(buffer, format="svg", metadata={"Date": None})
    return _inline(buffer.getvalue(), chart)


def _inline(document: bytes, chart: Chart) -> str:
    root = ET.fromstring(document)
    prefix = f"chart-{chart.key}"
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag in (f"{{{SVG_NS}}}style", f"{{{SVG_NS}}}metadata"):
                parent.remove(child)
    referenced = set(re.findall(r'(?:url\(#|href="#)([^)"]+)', document.decode()))
    for element in root.iter():
        style = element.attrib.pop("style", None)
        if style:
            for declaration in style.split(";"):
                name, _, value = (part.strip() for part in declaration.partition(":"))
                if name in PRESENTATION and value:
                    element.set(name, value)
        for name, value in list(element.attrib.items()):
            if name == "id":
                if value in referenced:
                    element.set("id", f"{prefix}-{value}")
                else:
                    del element.attrib["id"]  # matplotlib names every group; nothing uses them
            elif "url(#" in value:
                element.set(name, value.replace("url(#", f"url(#{prefix}-"))
            elif name == f"{{{XLINK_NS}}}href" and value.startswith("#"):
                element.set(name, f"#{prefix}-{value[1:]}")
    # What the removed <style> said, as inherited presentation attributes.
    root.set("stroke-linejoin", "round")
    root.set("stroke-linecap", "butt")
    for size in ("width", "height"):
        root.attrib.pop(size, None)
    root.set("class", "chart")
    root.set("role", "img")
    root.set("aria-labelledby", f"{prefix}-title {prefix}-desc")
    title = ET.Element(f"{{{SVG_NS}}}title", id=f"{prefix}-title")
    title.text = chart.title
    description = ET.Element(f"{{{SVG_NS}}}desc", id=f"{prefix}-desc")
    description.text = chart.description
    root.insert(0, description)
    root.insert(0, title)
    text = ET.tostring(root, encoding="unicode")
    return re.sub(r">\s+<", "><", text)


async def svgs(charts: Sequence[Chart]) -> list[str]:
    loop = asyncio.get_running_loop()
    return list(await asyncio.gather(*(loop.run_in_executor(_pool, svg, c) for c in charts)))


async def pngs(charts: Sequence[Chart]) -> list[bytes]:
    loop = asyncio.get_running_loop()
    return list(await asyncio.gather(*(loop.run_in_executor(_pool, png, c) for c in charts)))
