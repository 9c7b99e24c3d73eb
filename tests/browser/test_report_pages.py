"""Reports and the summary in a real browser: a coordinator opens the report and sees the
charts, writes the summary (the count follows the typing) and exports it; an admin opens
the platform report."""

import asyncio
import threading
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from api import db
from api.settings import Settings
from tests.browser.support import check_page, screenshot, sign_in
from tests.report_history import HISTORY_CAMPAIGN, seed_history


@pytest.fixture(scope="module")
def history(browser_settings: Settings, server: str) -> Iterator[str]:
    """Last week's campaign in the second demo department, seeded into the server's database."""
    found: list[str] = []

    async def seed() -> None:
        engine = db.create_engine(browser_settings.database_url)
        try:
            found.append(
                await seed_history(db.create_session_factory(engine), browser_settings.keyring)
            )
        finally:
            await engine.dispose()

    # Playwright's sync API runs an event loop in this thread; the seeding needs its own.
    thread = threading.Thread(target=lambda: asyncio.run(seed()))
    thread.start()
    thread.join()
    yield found[0]


def test_coordinator_report_shows_charts_with_their_numbers(desktop: Page, history: str) -> None:
    sign_in(desktop, "coord-b", next="/coord/report")
    campaign = desktop.locator("#p-campaign option", has_text=HISTORY_CAMPAIGN)
    desktop.locator("#p-campaign").select_option(campaign.get_attribute("value"))
    desktop.locator("#p-campaign + button, form:has(#p-campaign) button").first.click()
    expect(desktop.locator("h1")).to_contain_text("Report")
    charts = desktop.locator("svg.chart[role=img]")
    expect(charts).to_have_count(3)
    expect(desktop.locator("svg.chart title").first).to_have_text("Drop-offs per day")
    screenshot(desktop, "coordinator-report")
    check_page(desktop, "coordinator-report")
