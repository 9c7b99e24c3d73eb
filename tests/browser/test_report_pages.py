"""Reports and the summary in a real browser: a coordinator opens the report and sees the
charts, writes the summary (the count follows the typing) and exports it; an admin opens
the platform report."""

import asyncio
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from docx import Document
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect

from api import charts, db
from api.settings import Settings
from exchange.summaries import count_characters
from tests.browser.support import check_page, sign_in
from tests.report_history import HISTORY_CAMPAIGN, seed_history


@pytest.fixture(scope="module")
def history(browser_settings: Settings, server: str) -> Iterator[str]:
    """Last week's campaign in the second demo department, seeded into the server's database;
    its id. The server runs in this process: drawing one chart here first pays for
    matplotlib's import and font set-up, which would otherwise land on one page load."""
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
    charts.svg(charts.Chart("warm-up", "预热", "", "bars", "", ("a",), ()))
    yield found[0]


def activity_photo() -> bytes:
    image = Image.new("RGB", (480, 320), (222, 236, 228))
    draw = ImageDraw.Draw(image)
    for n, colour in enumerate(((10, 107, 59), (194, 84, 45), (58, 110, 165))):
        draw.rectangle((40 + n * 140, 120 - n * 30, 150 + n * 140, 280), fill=colour)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def choose_history(page: Page) -> None:
    campaign = page.locator("#p-campaign option", has_text=HISTORY_CAMPAIGN)
    page.get_by_label("活动").select_option(campaign.get_attribute("value"))
    page.get_by_role("button", name="查看活动").click()


def test_coordinator_report_shows_charts_with_their_numbers(desktop: Page, history: str) -> None:
    sign_in(desktop, "coord-b", next="/coord/report")
    choose_history(desktop)
    expect(desktop.locator("h1")).to_contain_text("报告")
    charts = desktop.locator("svg.chart[role=img]")
    expect(charts).to_have_count(3)
    expect(desktop.locator("svg.chart title").first).to_have_text("每日投放")
    expect(desktop.locator("svg.chart desc").first).to_contain_text("共19次")
    # Each chart's numbers are a table beside it: seven days of the campaign, 19 drop-offs.
    daily = desktop.locator("#figure-daily table tbody tr")
    expect(daily).to_have_count(7)
    expect(desktop.locator(".stat", has_text="废纸（千克）")).to_contain_text("30.7")
    expect(desktop.get_by_role("heading", name="二氧化碳当量的估算方法")).to_be_visible()
    check_page(desktop, "coordinator-report")


def test_coordinator_edits_the_summary_and_exports_it(
    desktop: Page, history: str, tmp_path: Path
) -> None:
    sign_in(desktop, "coord-b", next=f"/coord/summary?campaign={history}")
    text = desktop.get_by_label("总结正文")
    draft = text.input_value()
    assert "一、主要成效" in draft
    counter = desktop.locator("#s-count-value")
    expect(counter).to_have_text(f"{count_characters(draft):,}")

    # The page counts as the server does: whitespace of every kind is free.
    tricky = "字 a\t\n\u3000b\u00a0c\u2028😀\x1c"
    assert desktop.evaluate("t => window.countCharacters(t)", tricky) == count_characters(tricky)

    text.fill("太" * 2001)
    expect(counter).to_have_text("2,001")
    expect(desktop.locator("#s-count")).to_have_class("counter over")
    desktop.get_by_role("button", name="保存总结").click()
    expect(desktop.get_by_role("status")).to_have_text("已保存。")
    desktop.get_by_role("link", name="导出Word（.docx）").click()
    expect(desktop.get_by_role("alert")).to_contain_text("总结共2,001字")

    desktop.get_by_label("照片（JPEG或PNG，不超过2 MB）").set_input_files(
        {"name": "activity.png", "mimeType": "image/png", "buffer": activity_photo()}
    )
    desktop.get_by_label("图片说明").fill("一楼大厅回收点")
    desktop.get_by_role("button", name="上传照片").click()
    desktop.get_by_role("checkbox", name="一楼大厅回收点").check()

    final = draft + "\n\n特别感谢后勤服务中心的同事协助称重。"
    desktop.get_by_label("总结正文").fill(final)
    expect(counter).to_have_text(f"{count_characters(final):,}")
    desktop.get_by_role("button", name="保存总结").click()
    expect(desktop.get_by_role("status")).to_have_text("已保存。")
    expect(desktop.locator(".muted", has_text="最后保存")).to_contain_text("协调员B")
    check_page(desktop, "coordinator-summary")

    with desktop.expect_download() as download:
        desktop.get_by_role("link", name="导出Word（.docx）").click()
    saved = tmp_path / "summary.docx"
    download.value.save_as(saved)
    document = Document(io.BytesIO(saved.read_bytes()))
    body = "\n".join(p.text for p in document.paragraphs if p.style.name != "Caption")
    assert "特别感谢后勤服务中心的同事协助称重。" in body
    assert count_characters(body) <= 2000
    assert len(document.inline_shapes) == 4  # the three charts, chosen by default, and the photo

    desktop.get_by_role("link", name="打印版").click()
    expect(desktop.locator("article.summary-print svg.chart")).to_have_count(3)
    expect(desktop.get_by_role("img", name="一楼大厅回收点")).to_be_visible()
    check_page(desktop, "coordinator-summary-print")


def test_admin_opens_the_platform_report(desktop: Page, history: str) -> None:
    sign_in(desktop, "admin", next=f"/admin/report?campaign={history}")
    expect(desktop.locator("h1")).to_contain_text("全部部门")
    expect(desktop.locator("svg.chart[role=img]")).to_have_count(4)
    expect(desktop.locator("#figure-participation figcaption")).to_have_text("各部门参与率")
    departments = desktop.locator("table", has=desktop.locator("th", has_text="参与率"))
    expect(departments.locator("tbody tr").first).to_be_visible()
    desktop.get_by_role("link", name="废纸（千克）").first.click()
    expect(desktop.locator("th[aria-sort=ascending]")).to_contain_text("废纸（千克）")
    check_page(desktop, "admin-platform-report")
    desktop.get_by_role("link", name="撰写总结").click()
    expect(desktop.get_by_label("总结正文")).to_contain_text("云兑换平台各部门“云兑换”活动总结")
    expect(desktop.locator("input[name=pictures]")).to_have_count(4)  # with participation
