"""The whole exchange in a real browser, as each role lives it:

admin opens a campaign and its rate card → the coordinator sets up a collection point and a
village product → an employee on a phone opens the poster's URL and logs a drop-off → the
coordinator confirms it → the employee's balance → order with a confirmation step → pickup
QR → the coordinator's pickup desk accepts the token typed into the scanner box → the
employee's order shows picked up.
"""

import io
import re

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.browser.support import check_page, sign_in

DEPARTMENT = "示范机关事务局"


def png_photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (480, 360), (196, 160, 92)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def journey() -> dict[str, str]:
    """What one step leaves for the next: the steps run in order and share this."""
    return {}


def test_admin_opens_a_campaign_with_a_rate_card(new_desktop, journey: dict[str, str]) -> None:
    admin = new_desktop()
    sign_in(admin, "admin")
    admin.goto("/admin/campaigns")
    check_page(admin, "admin-campaigns")
    admin.get_by_label("名称").fill("节能宣传周")
    admin.get_by_label("人工确认每次投放").check()
    admin.get_by_label("适用范围").select_option(label=DEPARTMENT)
    admin.get_by_role("button", name="创建活动").click()
    expect(admin.get_by_role("heading", name="节能宣传周")).to_be_visible()
    admin.get_by_label("报纸及废纸").fill("30")
    admin.get_by_label("墨盒").fill("20")
    admin.get_by_role("button", name="保存积分标准").click()
    expect(admin.get_by_role("status")).to_contain_text("已保存")
    expect(admin.get_by_label("报纸及废纸")).to_have_value("30")
    check_page(admin, "admin-rates")
    admin.get_by_label("每人每日积分上限").fill("0")
    admin.get_by_role("button", name="保存修改").click()
    expect(admin.locator("#f-daily_cap_points-error")).to_be_visible()
    admin.get_by_label("每人每日积分上限").fill("800")
    admin.get_by_role("button", name="保存修改").click()
    expect(admin.get_by_role("status")).to_contain_text("活动已修改")
    expect(admin.get_by_label("每人每日积分上限")).to_have_value("800")


def test_coordinator_adds_a_collection_point_and_a_product(
    new_desktop, journey: dict[str, str]
) -> None:
    coordinator = new_desktop()
    sign_in(coordinator, "coord-a")
    coordinator.goto("/coord/stations")
    coordinator.get_by_label("名称").fill("一号楼大厅")
    coordinator.get_by_label("位置").fill("一号楼一层东侧")
    coordinator.get_by_role("button", name="添加回收点").click()
    link = coordinator.locator("tr", has_text="一号楼大厅").locator("a.mono")
    journey["poster"] = re.sub(r"^https?://[^/]+", "", link.inner_text())
    check_page(coordinator, "coordinator-stations")

    coordinator.goto("/coord/products")
    coordinator.get_by_label("名称").fill("石门村高山大米")
    coordinator.get_by_label("规格").fill("5 公斤/袋")
    coordinator.get_by_label("兑换价（积分）").fill("30")
    coordinator.get_by_label("支付给帮扶村的金额（元）").fill("45.50")
    coordinator.get_by_label("库存").fill("5")
    coordinator.get_by_label("照片").set_input_files(
        {"name": "rice.png", "mimeType": "image/png", "buffer": png_photo()}
    )
    coordinator.get_by_role("button", name="添加商品").click()
    expect(coordinator.get_by_role("status")).to_contain_text("已保存")
    expect(coordinator.get_by_role("img", name="石门村高山大米")).to_be_visible()
    check_page(coordinator, "coordinator-product")
    coordinator.get_by_label("增加库存").fill("-9")
    coordinator.get_by_role("button", name="保存", exact=True).click()
    expect(coordinator.locator("#f-stock_delta-error")).to_contain_text("库存不能少于 0")
    coordinator.get_by_label("增加库存").fill("3")
    coordinator.get_by_role("button", name="保存", exact=True).click()
    expect(coordinator.locator("#stock-now")).to_have_text("8")
    coordinator.get_by_label("增加库存").fill("-3")
    coordinator.get_by_role("button", name="保存", exact=True).click()
    expect(coordinator.locator("#stock-now")).to_have_text("5")
    coordinator.get_by_role("link", name="帮扶村商品").last.click()
    expect(coordinator.locator("tr", has_text="石门村高山大米")).to_contain_text("45.50")
    check_page(coordinator, "coordinator-products")


def test_employee_logs_a_drop_off_from_the_poster(new_phone, journey: dict[str, str]) -> None:
    phone = new_phone()
    phone.goto(journey["poster"])
    expect(phone).to_have_url(re.compile(r"/login\?next=/s/"))
    phone.get_by_label("用户名").fill("emp-a1")
    phone.get_by_label("密码").fill("demo-pass")
    phone.get_by_role("button", name="登录").click()
    expect(phone.get_by_role("heading", name="一号楼大厅")).to_be_visible()
    phone.get_by_label("报纸及废纸").check()
    phone.get_by_label("数量").fill("2.5")
    check_page(phone, "phone-dropoff")
    phone.get_by_role("button", name="登记投放").click()
    expect(phone.get_by_role("heading", name="+75 积分待确认")).to_be_visible()
    journey["dropoff"] = phone.url.rsplit("/", 1)[1]
    check_page(phone, "phone-dropoff-result")


def test_coordinator_confirms_the_drop_off(new_desktop) -> None:
    coordinator = new_desktop()
    sign_in(coordinator, "coord-a")
    coordinator.goto("/coord/dropoffs")
    check_page(coordinator, "coordinator-dropoffs")
    coordinator.get_by_role("button", name="确认 职工A1").click()
    expect(coordinator.get_by_role("status")).to_contain_text("已确认：1")


def test_employee_sees_the_points_and_orders_with_a_confirmation_step(
    new_phone, journey: dict[str, str]
) -> None:
    phone = new_phone()
    sign_in(phone, "emp-a1")
    expect(phone.locator(".stat.main .value")).to_have_text("75")
    check_page(phone, "phone-home")
    phone.get_by_role("link", name="兑换商品").first.click()
    check_page(phone, "phone-catalog")
    phone.get_by_role("link", name="石门村高山大米").click()
    check_page(phone, "phone-product")
    phone.get_by_label("数量").fill("2")
    phone.get_by_role("button", name="继续").click()
    expect(phone.get_by_role("heading", name="确认订单")).to_be_visible()
    expect(phone.locator("dl.facts")).to_contain_text("60 积分")
    check_page(phone, "phone-order-confirm")
    phone.get_by_role("button", name="确认下单").click()
    expect(phone.get_by_role("img", name="领取二维码")).to_be_visible()
    box = phone.get_by_role("img", name="领取二维码").bounding_box()
    assert box and box["width"] >= 300, "the QR must be large enough to scan from another phone"
    expect(phone.locator("dl.facts")).to_contain_text("机关大楼一层收发室")
    check_page(phone, "phone-order-qr")
    phone.get_by_text("扫码枪读不出二维码？").click()
    journey["token"] = phone.locator("#pickup-token").inner_text()
    journey["order"] = "/" + phone.url.split("/", 3)[3]
    # The QR encodes {PUBLIC_BASE_URL}/p/{token}; opened by an employee it explains itself.
    phone.goto(f"/p/{journey['token']}")
    expect(phone.get_by_role("heading", name="这是领取码")).to_be_visible()
    phone.goto("/orders")
    check_page(phone, "phone-orders")


def test_pickup_desk_hands_the_order_over_once(new_desktop, journey: dict[str, str]) -> None:
    desk = new_desktop()
    sign_in(desk, "coord-a")
    # A phone camera app opening the QR's URL lands on the desk with the code filled in,
    # and nothing is handed over until the coordinator presses the button.
    desk.goto(f"/p/{journey['token']}")
    box = desk.get_by_label("领取码")
    expect(box).to_have_value(journey["token"])
    expect(desk.locator(".scan-result")).to_have_count(0)
    desk.goto("/coord/pickup")
    expect(box).to_be_focused()
    box.fill(journey["token"])
    box.press("Enter")  # what a USB scanner sends after the code
    result = desk.locator(".scan-result")
    expect(result).to_have_attribute("data-result", "ok")
    expect(result).to_contain_text("请交付")
    expect(result).to_contain_text("石门村高山大米 × 2")
    expect(result).to_contain_text("职工A1")
    expect(box).to_have_value("")
    check_page(desk, "pickup-desk")
    box.fill(journey["token"])
    box.press("Enter")
    expect(result).to_have_attribute("data-result", "refused")
    expect(result).to_contain_text("已于")
    expect(result).to_contain_text("协调员A")
    check_page(desk, "pickup-desk-refused")


def test_employee_sees_the_order_picked_up(new_phone, journey: dict[str, str]) -> None:
    phone = new_phone()
    sign_in(phone, "emp-a1", next=journey["order"])
    expect(phone.locator("#order-status")).to_contain_text("已领取")
    expect(phone.get_by_role("img", name="领取二维码")).to_have_count(0)
    phone.goto("/home")
    expect(phone.locator(".stat.main .value")).to_have_text("15")


def test_auditor_finds_the_entries_and_sees_their_inclusion_proof_verified(
    new_desktop, journey: dict[str, str]
) -> None:
    auditor = new_desktop()
    sign_in(auditor, "auditor")
    expect(auditor.get_by_role("heading", name="账本")).to_be_visible()
    auditor.get_by_label("部门").select_option(label=DEPARTMENT)
    auditor.get_by_role("button", name="查看").click()
    order_id = journey["order"].rsplit("/", 1)[1]
    auditor.get_by_label("业务编号").fill(f"order:{order_id}")
    auditor.get_by_role("button", name="筛选").click()
    rows = auditor.locator("table.ledger tbody tr")
    expect(rows).to_have_count(2)  # the hold when ordering, its post at pickup
    expect(rows.nth(0)).to_contain_text("待过账")
    expect(rows.nth(1)).to_contain_text("过账")
    expect(rows.nth(1)).to_contain_text("60")
    check_page(auditor, "auditor-ledger")

    rows.nth(1).get_by_role("link").click()
    expect(auditor.locator("#proof-status")).to_have_attribute("data-server-verified", "yes")
    expect(auditor.locator("#browser-check")).to_have_attribute("data-verified", "yes")
    check_page(auditor, "auditor-entry")

    auditor.goto("/audit/ledger")
    auditor.get_by_label("部门").select_option(label=DEPARTMENT)
    auditor.get_by_role("button", name="查看").click()
    auditor.get_by_label("业务编号").fill(f"dropoff:{journey['dropoff']}")
    auditor.get_by_role("button", name="筛选").click()
    expect(rows).to_have_count(2)  # the pending credit, posted when the coordinator confirmed

    auditor.get_by_role("link", name="余额").click()
    auditor.get_by_label("部门").select_option(label=DEPARTMENT)
    auditor.get_by_role("button", name="查看").click()
    auditor.get_by_label("账户").select_option(label="职工A1 (emp-a1)")
    auditor.get_by_role("button", name="查询余额").click()
    expect(auditor.locator("#balance")).to_have_text("15")  # 75 credited, 60 spent
    check_page(auditor, "auditor-balances")

    auditor.get_by_role("link", name="签名树头").first.click()
    auditor.get_by_label("部门").select_option(label=DEPARTMENT)
    auditor.get_by_role("button", name="查看").click()
    expect(auditor.get_by_role("status")).to_contain_text("签名有效")
    with auditor.expect_download() as download:
        auditor.get_by_role("link", name="账本导出").click()
    lines = download.value.path().read_text().splitlines()
    assert len(lines) >= 4 and all(line.startswith("{") for line in lines)
    check_page(auditor, "auditor-tree-head")


def test_coordinator_rejects_drop_offs_in_bulk_with_a_reason(
    new_phone, new_desktop, journey: dict[str, str]
) -> None:
    phone = new_phone()
    sign_in(phone, "emp-a3", next=journey["poster"])
    for count in ("1", "2"):
        phone.goto(journey["poster"])
        phone.get_by_label("墨盒").check()
        phone.get_by_label("数量").fill(count)
        phone.get_by_role("button", name="登记投放").click()
        expect(phone.get_by_role("heading", name=re.compile("积分待确认"))).to_be_visible()

    coordinator = new_desktop()
    sign_in(coordinator, "coord-a", next="/coord/dropoffs")
    for row in coordinator.locator("tr", has_text="职工A3").all():
        row.get_by_role("checkbox").check()
    coordinator.get_by_role("button", name="驳回所选").click()
    expect(coordinator.locator("#f-bulk_reason-error")).to_have_text("请填写驳回原因。")
    for row in coordinator.locator("tr", has_text="职工A3").all():
        expect(row.get_by_role("checkbox")).to_be_checked()  # the ticks are kept
    coordinator.get_by_label("驳回原因", exact=True).fill("回收点未见实物")
    coordinator.get_by_role("button", name="驳回所选").click()
    expect(coordinator.get_by_role("status")).to_contain_text("已驳回：2")
    expect(coordinator.locator("tr", has_text="职工A3")).to_have_count(0)

    phone.goto("/home")
    expect(phone.locator(".stat").nth(1).locator(".value")).to_have_text("0")
    phone.locator("ul.activity a").first.click()
    expect(phone.get_by_role("heading", name="投放未通过")).to_be_visible()
    expect(phone.get_by_role("status")).to_contain_text("回收点未见实物")
