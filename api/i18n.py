"""Page text in Simplified Chinese (the default) or English, through one gettext catalog.

Every page string is written once, in English, as a gettext message id: `_()` in templates
(jinja2.ext.i18n) and in Python. `api/locale/zh/LC_MESSAGES/messages.po` translates them;
it is compiled in memory when the app starts, so no build step and no committed .mo file.
English needs no catalog: its text is the message id itself.

Refresh the catalog after changing page text, then translate the new empty entries
(tests/pages/test_i18n.py fails while any page string lacks a Chinese translation):

    uv run pybabel extract -F api/locale/babel.cfg -o /tmp/messages.pot --no-location .
    uv run pybabel update -i /tmp/messages.pot -d api/locale -D messages \
        --no-fuzzy-matching --no-wrap --ignore-obsolete
"""

import gettext
import io
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = {"zh": "简体中文", "en": "English"}
DEFAULT_LANGUAGE = "zh"
LANGUAGE_COOKIE = "exchange_lang"


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalog of `language`; English (the message ids) needs none."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if language == "en" or not po.exists():
        return gettext.NullTranslations()
    with po.open("rb") as source:
        catalog = read_po(source, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def supported(language: str | None) -> str | None:
    if not language:
        return None
    primary = language.strip().lower().replace("_", "-").split("-")[0]
    return primary if primary in LANGUAGES else None


def from_accept_language(header: str | None) -> str | None:
    """The best supported language of an Accept-Language header, by its q-values."""
    choices: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if (language := supported(tag)) and quality > 0:
            choices.append((-quality, position, language))
    return min(choices)[2] if choices else None


def negotiate(cookie: str | None, user_language: str | None, accept_language: str | None) -> str:
    """A choice made on the page wins, then the user's setting, then the browser's."""
    return (
        supported(cookie)
        or supported(user_language)
        or from_accept_language(accept_language)
        or DEFAULT_LANGUAGE
    )


def _new_gettext(function: Callable[[str], str]) -> Callable[..., str]:
    # As jinja2.ext.i18n's newstyle gettext: placeholders are filled in, and escaped, from
    # `%(name)s` keyword arguments, so a template never glues translated fragments together.
    @pass_context
    def call(context: Context, message: str, /, **variables: Any) -> str:
        text = context.call(function, message)
        if context.eval_ctx.autoescape:
            text = Markup(text)
        return text % variables

    return call


def _new_ngettext(function: Callable[[str, str, int], str]) -> Callable[..., str]:
    @pass_context
    def call(context: Context, singular: str, plural: str, num: int, /, **variables: Any) -> str:
        variables.setdefault("num", num)
        text = context.call(function, singular, plural, num)
        if context.eval_ctx.autoescape:
            text = Markup(text)
        return text % variables

    return call


def template_callables(language: str) -> dict[str, Any]:
    """`gettext`/`ngettext` for one render; `_` in templates resolves `gettext` from here."""
    catalog = translations(language)
    return {"gettext": _new_gettext(catalog.gettext), "ngettext": _new_ngettext(catalog.ngettext)}
