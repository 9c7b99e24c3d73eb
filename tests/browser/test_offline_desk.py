"""The pickup desk with no network, in Chromium: opened once online, it hands over on its own
judgement, keeps its queue through a reload, and sends it when the network is back — where
each hand-over is posted once, and one that came too late becomes an incident to settle."""

import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from playwright.sync_api import APIRequestContext, Page, Playwright, expect

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, DESKTOP, launch_with_camera
from tests.browser.support import camera_feed, check_page, csp_violations, screenshot, sign_in

PASSWORD = "desk-test-pass"


class Api:
    """The real server's API, as its people would call it: sign in, earn, order, look."""

    def __init__(self, playwright: Playwright, server: str) -> None:
        self.playwright = playwright
        self.server = server
        self.contexts: list[APIRequestContext] = []
        self.coordinator = self.signed_in("coord-b", "demo-pass")
        self.department = self.coordinator.get("/api/me").json()["department"]["id"]
        self.auditor = self.signed_in("auditor", "demo-pass")

    def signed_in(self, username: str, password: str) -> APIRequestContext:
        anonymous = self.playwright.request.new_context(base_url=self.server)
        answer = anonymous.post(
            "/api/auth/token", data={"username": username, "password": password}
        )
        assert answer.ok, answer.text()
        token = answer.json()["access_token"]
        anonymous.dispose()
        context = self.playwright.request.new_context(
            base_url=self.server, extra_http_headers={"Authorization": f"Bearer {token}"}
        )
        self.contexts.append(context)
        return context

    def call(self, context: APIRequestContext, method: str, path: str, **options: Any) -> Any:
        answer = context.fetch(path, method=method, **options)
        assert answer.ok, f"{method} {path}: {answer.status} {answer.text()}"
        return answer.json()

    def new_order(self) -> dict[str, Any]:
        """A new employee of department B earns 150 points and orders 糯玉米 (120). Department B:
        the journey tests give department A a campaign of its own that rates no phones."""
        username = f"desk-{secrets.token_hex(3)}"
        base = f"/api/departments/{self.department}"
        member = {
            "username": username,
            "display_name": f"职工{username[-3:]}",
            "roles": ["employee"],
            "password": PASSWORD,
        }
        self.call(self.coordinator, "POST", f"{base}/members", data=member)
        employee = self.signed_in(username, PASSWORD)
        station = self.call(self.coordinator, "GET", f"{base}/stations")["items"][0]["code"]
        key = {"Idempotency-Key": str(uuid.uuid4())}
        dropoff = {"station_code": station, "category": "phone", "quantity": 1}
        self.call(employee, "POST", "/api/dropoffs", data=dropoff, headers=key)
        products = self.call(employee, "GET", f"{base}/products")["items"]
        product = next(p for p in products if p["name"] == "糯玉米")
        wanted = {"product_id": product["id"], "quantity": 1}
        key = {"Idempotency-Key": str(uuid.uuid4())}
        placed = self.call(employee, "POST", "/api/orders", data=wanted, headers=key)
        return placed | {"employee": employee, "employee_name": username}

    def entries(self, order_id: str) -> list[str]:
        """The kinds of the ledger entries of the order, as an auditor reads them."""
        listed = self.call(
            self.auditor,
            "GET",
            f"/api/departments/{self.department}/ledger/entries",
            params={"reference": f"order:{order_id}"},
        )
        return [entry["kind"] for entry in listed["items"]]

    def incidents(self) -> dict[str, dict[str, Any]]:
        path = f"/api/departments/{self.department}/incidents"
        return {i["order_id"]: i for i in self.call(self.coordinator, "GET", path)["items"]}

    def close(self) -> None:
        for context in self.contexts:
            context.dispose()


@pytest.fixture
def api(playwright: Playwright, server: str) -> Iterator[Api]:
    client = Api(playwright, server)
    yield client
    client.close()


def open_desk(page: Page, name: str = "") -> None:
    """Sign in at the desk while online and wait until it could go offline: the service
    worker controls the page and the desk holds its copy of the bundle."""
    sign_in(page, "coord-b", next="/coord/pickup")
    if name:
        page.get_by_text("本核销台名称").click()
        page.get_by_label("名称", exact=True).fill(name)
        page.get_by_label("名称", exact=True).press("Tab")
    expect(page.locator("#desk-status")).to_have_attribute("data-offline-ready", "yes")


def hand_over_typed(page: Page, token: str) -> None:
    """What a USB scanner does: type the code, press Enter."""
    box = page.get_by_label("领取码")
    box.fill(token)
    box.press("Enter")
    expect(box).to_have_value("")


def test_three_hand_overs_offline_survive_a_reload_and_post_once_when_back_online(
    playwright: Playwright, server: str, api: Api, tmp_path: Path
) -> None:
    orders = [api.new_order() for _ in range(3)]
    fourth = api.new_order()
    feed = tmp_path / "codes.y4m"
    camera_feed(feed, [placed["pickup_url"] for placed in orders], frames=10)
    with_camera = launch_with_camera(playwright, feed)
    try:
        context = with_camera.new_context(
            base_url=server,
            viewport=DESKTOP,
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
            permissions=["camera"],
        )
        context.set_default_timeout(10_000)
        violations = csp_violations(context)
        desk = context.new_page()
        open_desk(desk)
        status = desk.locator("#desk-status")
        expect(status.locator("#desk-connection")).to_have_text("在线")

        context.set_offline(True)
        expect(status).to_have_attribute("data-connection", "offline")
        expect(status.locator("#desk-connection")).to_have_text("离线")
        desk.get_by_role("button", name="使用摄像头").click()
        # The feed shows the three codes in turn, over and over: each is handed over once,
        # and every later read of it is refused by the desk itself.
        expect(status).to_have_attribute("data-queued", "3", timeout=60_000)
        expect(desk.locator(".scan-result[data-offline=yes]")).to_be_visible()
        desk.get_by_role("button", name="关闭摄像头").click()
        for placed in orders:
            assert api.entries(placed["id"]) == ["pending"]  # nothing reached the server

        # The worker has no network either, so the reloaded page comes from what it kept.
        [worker] = context.service_workers
        reach = "fetch('/health').then(() => 'reached', () => 'unreachable')"
        assert worker.evaluate(reach) == "unreachable"
        reloaded = desk.reload()
        assert reloaded is not None and reloaded.from_service_worker
        expect(status).to_have_attribute("data-queued", "3")
        expect(status.locator("#desk-queue")).to_have_text("待上传：3 笔")
        expect(status.locator("#desk-connection")).to_have_text("离线")
        # A code read a second time at this desk is refused here, from its own record.
        hand_over_typed(desk, orders[0]["pickup_token"])
        refused = desk.locator(".scan-result")
        expect(refused).to_have_attribute("data-result", "refused")
        expect(refused).to_contain_text("本核销台已于")
        # An order placed after the desk's last copy: its signature vouches for it, and the
        # desk says to check what to hand over on the employee's phone.
        fifth = api.new_order()
        handed = desk.locator(".scan-result")
        hand_over_typed(desk, fifth["pickup_token"])
        expect(handed).to_have_attribute("data-result", "ok")
        expect(handed).to_contain_text("请在职工的订单页面上核对商品")
        # A fourth, typed: handed over offline with what to hand and to whom.
        hand_over_typed(desk, fourth["pickup_url"])
        expect(handed).to_contain_text("糯玉米 × 1")
        expect(handed).to_contain_text(f"领取人：职工{fourth['employee_name'][-3:]}")
        expect(handed).to_contain_text("网络恢复后自动上传")
        expect(status).to_have_attribute("data-queued", "5")
        screenshot(desk, "desk-offline")

        context.set_offline(False)
        expect(status).to_have_attribute("data-queued", "0", timeout=30_000)
        expect(status.locator("#desk-notes")).to_contain_text("已上传 5 笔交付")
        handed_over = [*orders, fourth, fifth]
        for placed in handed_over:
            assert api.entries(placed["id"]) == ["pending", "post"]
        assert not any(placed["id"] in api.incidents() for placed in handed_over)
        assert violations == []
    finally:
        with_camera.close()


def test_one_code_at_two_desks_offline_gives_one_pickup_and_one_incident(
    new_desktop: Callable[[], Page], api: Api
) -> None:
    placed = api.new_order()
    canteen, hall = new_desktop(), new_desktop()
    open_desk(canteen, "食堂东门")
    open_desk(hall, "大厅")
    for desk in (canteen, hall):
        desk.context.set_offline(True)
        hand_over_typed(desk, placed["pickup_token"])
        expect(desk.locator(".scan-result")).to_have_attribute("data-result", "ok")
        expect(desk.locator("#desk-status")).to_have_attribute("data-queued", "1")

    for desk in (canteen, hall):
        desk.context.set_offline(False)
        expect(desk.locator("#desk-status")).to_have_attribute("data-queued", "0")
    expect(hall.locator("#desk-notes")).to_contain_text("重复交付，已记为待处理的异常")
    assert api.entries(placed["id"]) == ["pending", "post"]
    incident = api.incidents()[placed["id"]]
    assert (incident["first_desk_name"], incident["desk_name"]) == ("食堂东门", "大厅")
    assert incident["kind"] == "second_handover" and incident["status"] == "open"

    hall.goto("/coord/pickup")
    hall.get_by_role("link", name="待处理的核销异常").click()
    card = hall.locator(f"#incident-{incident['id']}")
    expect(card).to_contain_text("重复交付")
    expect(card).to_contain_text("核销台：食堂东门")
    expect(card).to_contain_text("核销台：大厅")
    check_page(hall, "desk-incident")
    card.get_by_label("商品留给职工").check()
    card.get_by_label("备注（选填）").fill("两个核销台都交付了，职工已确认")
    card.get_by_role("button", name="处理").click()
    expect(hall.get_by_text("异常已处理。")).to_be_visible()
    assert api.incidents()[placed["id"]]["resolution"] == "given"


def test_an_order_cancelled_while_the_desk_is_offline_becomes_an_incident(
    new_desktop: Callable[[], Page], api: Api
) -> None:
    placed = api.new_order()
    desk = new_desktop()
    open_desk(desk)
    desk.context.set_offline(True)
    # The employee cancels after the desk's last copy of the bundle: the desk cannot know.
    api.call(placed["employee"], "POST", f"/api/orders/{placed['id']}/cancel")
    hand_over_typed(desk, placed["pickup_token"])
    expect(desk.locator(".scan-result")).to_have_attribute("data-result", "ok")
    desk.context.set_offline(False)
    expect(desk.locator("#desk-status")).to_have_attribute("data-queued", "0")
    expect(desk.locator("#desk-notes")).to_contain_text("订单取消后仍交付")
    assert api.entries(placed["id"]) == ["pending", "void"]
    assert api.incidents()[placed["id"]]["kind"] == "after_cancellation"
    # Scanned again, offline or not, the code is refused.
    desk.context.set_offline(True)
    hand_over_typed(desk, placed["pickup_token"])
    expect(desk.locator(".scan-result")).to_have_attribute("data-result", "refused")


def test_a_desk_whose_sign_in_ran_out_keeps_handing_over_and_sends_once_signed_in(
    new_desktop: Callable[[], Page], api: Api
) -> None:
    first, second = api.new_order(), api.new_order()
    desk = new_desktop()
    open_desk(desk, "大厅")
    result = desk.locator(".scan-result")
    status = desk.locator("#desk-status")
    # Online, the desk asks the server, with the key it would queue the scan under.
    with desk.expect_request(
        lambda r: r.method == "POST" and r.url.endswith("/coord/pickup")
    ) as ask:
        hand_over_typed(desk, first["pickup_token"])
    form = parse_qs(ask.value.post_data or "")
    assert form["desk_name"] == ["大厅"] and len(form["idempotency_key"][0]) == 32
    expect(result).to_have_attribute("data-result", "ok")
    expect(result).not_to_have_attribute("data-offline", "yes")
    assert api.entries(first["id"]) == ["pending", "post"]

    # The sign-in runs out mid-day: the desk cannot ask, so it judges by itself and waits.
    desk.context.clear_cookies(name="exchange_token")
    hand_over_typed(desk, second["pickup_token"])
    expect(result).to_have_attribute("data-offline", "yes")
    expect(result).to_have_attribute("data-result", "ok")
    expect(desk.locator("#desk-sign-in")).to_be_visible()
    expect(status).to_have_attribute("data-queued", "1")
    # The code it handed over online is refused from its own record.
    hand_over_typed(desk, first["pickup_token"])
    expect(result).to_have_attribute("data-result", "refused")
    expect(result).to_contain_text("本核销台已于")
    assert api.entries(second["id"]) == ["pending"]

    sign_in(desk, "coord-b", next="/coord/pickup")
    expect(status).to_have_attribute("data-queued", "0")
    assert api.entries(second["id"]) == ["pending", "post"]


def test_the_desk_can_be_installed_as_an_app(
    playwright: Playwright, server: str, tmp_path: Path
) -> None:
    # A profile on disk: Chromium installs nothing from an incognito window, which is what
    # every other browser context of these tests is.
    profile = playwright.chromium.launch_persistent_context(
        tmp_path / "profile",
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        base_url=server,
        viewport=DESKTOP,
        locale="zh-CN",
    )
    try:
        desk = profile.pages[0] if profile.pages else profile.new_page()
        open_desk(desk)
        devtools = profile.new_cdp_session(desk)
        assert devtools.send("Page.getInstallabilityErrors")["installabilityErrors"] == []
        manifest = devtools.send("Page.getAppManifest")
        assert manifest["errors"] == []
        assert manifest["manifest"]["name"] == "云兑换领取核销台"
        assert manifest["manifest"]["startUrl"] == f"{server}/coord/pickup"
    finally:
        profile.close()
