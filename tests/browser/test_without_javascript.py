"""Every page but the camera scanner works without JavaScript. Walked here in English, the
language a browser asking for en-US gets, so the second language is exercised end to end."""

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import DESKTOP, PHONE
from tests.browser.support import screenshot


@pytest.fixture
def contexts(browser: Browser, server: str) -> Iterator[list[BrowserContext]]:
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


def plain_page(
    browser: Browser, server: str, contexts: list[BrowserContext], viewport: dict[str, int]
) -> Page:
    context = browser.new_context(
        base_url=server, viewport=viewport, locale="en-US", java_script_enabled=False
    )
    context.set_default_timeout(10_000)
    contexts.append(context)
    return context.new_page()


def sign_in_english(page: Page, username: str, next: str = "") -> None:
    page.goto("/login" + (f"?next={next}" if next else ""))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("demo-pass")
    page.get_by_role("button", name="Sign in").click()


def test_drop_off_order_and_pickup_work_without_javascript_in_english(
    browser: Browser, server: str, contexts: list[BrowserContext]
) -> None:
    desk = plain_page(browser, server, contexts, DESKTOP)
    sign_in_english(desk, "coord-b", "/coord/stations")
    poster = re.sub(r"^https?://[^/]+", "", desk.locator("a.mono").first.inner_text())

    phone = plain_page(browser, server, contexts, PHONE)
    sign_in_english(phone, "emp-b4", poster)
    expect(phone.locator("html")).to_have_attribute("lang", "en")
    phone.get_by_label("Phones").check()
    phone.get_by_label("How much?").fill("1")
    screenshot(phone, "phone-dropoff-english")  # axe needs scripts; the markup is checked elsewhere
    phone.get_by_role("button", name="Log drop-off").click()
    expect(phone.get_by_role("heading", name="+150 points")).to_be_visible()
    expect(phone.get_by_role("status")).to_contain_text("Credited")

    phone.goto("/catalog")
    phone.get_by_role("link", name="糯玉米").click()
    phone.get_by_label("How many?").fill("1")
    phone.get_by_role("button", name="Continue").click()
    phone.get_by_role("button", name="Place order").click()
    expect(phone.get_by_role("img", name="Pickup QR code")).to_be_visible()
    token = phone.locator("#pickup-token").text_content()
    assert token

    desk.goto("/coord/pickup")
    desk.get_by_label("Pickup code").fill(token)
    desk.get_by_role("button", name="Check and hand over").click()
    expect(desk.locator(".scan-result")).to_have_attribute("data-result", "ok")
    expect(desk.locator(".scan-result")).to_contain_text("糯玉米 × 1")
    screenshot(desk, "pickup-desk-english-no-js")

    phone.reload()
    expect(phone.locator("#order-status")).to_contain_text("Picked up")
