"""The Jinja2 environment of the pages: autoescaped, gettext-aware, with display filters."""

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

TEMPLATE_DIR = Path(__file__).parent.parent / "templates"
# Asia/Shanghai has kept UTC+8 without daylight saving since 1991; a fixed offset needs no tzdata.
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")


def local_time(value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A UTC time as shown to people: Asia/Shanghai."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(SHANGHAI).strftime(fmt)
    except OverflowError:  # a time at the edge of the calendar: show it as stored
        return value.isoformat(sep=" ", timespec="minutes")


def kilograms(grams: int | None) -> str:
    """Whole grams as kilograms with one decimal, rounded half up, without floats."""
    if grams is None:
        return ""
    tenths = (grams + 50) // 100
    return f"{tenths // 10}.{tenths % 10}"


def yuan(fen: int | None) -> str:
    if fen is None:
        return ""
    return f"{fen // 100}.{fen % 100:02d}"


def thousands(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def create_environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html", "svg"]),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(local_time=local_time, kg=kilograms, yuan=yuan, n=thousands)
    return environment


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(create_environment()))
