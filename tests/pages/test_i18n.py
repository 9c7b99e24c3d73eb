"""Every page string goes through the one gettext catalog, and Chinese translates all of it."""

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from api import i18n

ROOT = Path(__file__).parent.parent.parent
METHODS = [
    ("api/pages/**.py", "python"),
    ("exchange/notify/texts.py", "python"),  # the notifications' text
    ("exchange/receipt_words.py", "python"),  # what a receipt says happened
    ("api/templates/**.html", "jinja2"),
]
OPTIONS = {"api/templates/**.html": {"extensions": "jinja2.ext.i18n"}}


def page_messages() -> set[str]:
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), METHODS, options_map=OPTIONS
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def chinese_catalog() -> dict[str, str]:
    with (i18n.LOCALE_DIR / "zh" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source, locale="zh")
    return {
        (m.id if isinstance(m.id, str) else m.id[0]): (
            m.string if isinstance(m.string, str) else m.string[0]
        )
        for m in catalog
        if m.id and "fuzzy" not in m.flags
    }


def test_every_page_string_has_a_chinese_translation() -> None:
    messages = page_messages()
    assert len(messages) > 50  # the extraction found the pages
    translated = {k for k, v in chinese_catalog().items() if v}
    missing = sorted(messages - translated)
    assert not missing, "untranslated (see api/i18n.py for the update commands): " + repr(missing)


def test_the_catalog_holds_no_string_the_pages_no_longer_use() -> None:
    stale = sorted(set(chinese_catalog()) - page_messages())
    assert not stale, f"remove with pybabel update (see api/i18n.py): {stale!r}"


def test_the_compiled_catalog_translates_and_english_is_the_message_id() -> None:
    assert i18n.translations("zh").gettext("Sign in") == "登录"
    assert i18n.translations("en").gettext("Sign in") == "Sign in"


def test_language_is_the_choice_then_the_account_then_the_browser_then_chinese() -> None:
    assert i18n.negotiate("en", "zh", "zh-CN") == "en"
    assert i18n.negotiate(None, "en", "zh-CN") == "en"
    assert i18n.negotiate(None, None, "fr;q=1, en-GB;q=0.8, zh;q=0.5") == "en"
    assert i18n.negotiate(None, None, "zh-Hans-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert i18n.negotiate("xx", None, "de") == "zh"
    assert i18n.negotiate(None, None, None) == "zh"
