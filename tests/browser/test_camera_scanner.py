"""The pickup desk's camera scanner, with Chromium's fake camera showing the order's QR code:
the vendored qr-scanner decodes it and the desk hands the order over."""

from pathlib import Path

from playwright.sync_api import Browser, Playwright, expect

from tests.browser.conftest import DESKTOP, PHONE, launch_with_camera
from tests.browser.support import camera_feed, csp_violations, sign_in


def test_the_camera_reads_the_pickup_qr_and_the_desk_hands_over(
    browser: Browser, playwright: Playwright, server: str, tmp_path: Path
) -> None:
    phone_context = browser.new_context(base_url=server, viewport=PHONE, locale="zh-CN")
    phone = phone_context.new_page()
    desk_context = browser.new_context(base_url=server, viewport=DESKTOP, locale="zh-CN")
    desk = desk_context.new_page()
    sign_in(desk, "coord-b", next="/coord/stations")
    poster = desk.locator("a.mono").nth(1).get_attribute("href")
    sign_in(phone, "emp-b5", next=poster)
    phone.get_by_label("旧手机").check()
    phone.get_by_label("数量").fill("1")
    phone.get_by_role("button", name="登记投放").click()
    phone.goto("/catalog")
    phone.get_by_role("link", name="糯玉米").click()
    phone.get_by_role("button", name="继续").click()
    phone.get_by_role("button", name="确认下单").click()
    phone.get_by_text("扫码枪读不出二维码？").click()
    token = phone.locator("#pickup-token").inner_text()

    feed = tmp_path / "qr.y4m"
    camera_feed(feed, [f"{server}/p/{token}"])
    with_camera = launch_with_camera(playwright, feed)
    try:
        context = with_camera.new_context(
            base_url=server, viewport=DESKTOP, locale="zh-CN", permissions=["camera"]
        )
        violations = csp_violations(context)
        scanner = context.new_page()
        sign_in(scanner, "coord-b", next="/coord/pickup")
        scanner.get_by_role("button", name="使用摄像头").click()
        result = scanner.locator(".scan-result")
        expect(result).to_have_attribute("data-result", "ok", timeout=20_000)
        expect(result).to_contain_text("糯玉米 × 1")
        expect(result).to_contain_text("职工B5")
        assert violations == []  # the scanner and its decoding worker run under the CSP
    finally:
        with_camera.close()
        phone_context.close()
        desk_context.close()
