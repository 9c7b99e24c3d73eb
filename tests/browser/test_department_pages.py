"""Department administration in a real browser: registrations, members and CSV import,
the dashboard; and the drop-off form's guards: a double submit logs once, a post without
its CSRF token is refused."""

import re

from playwright.sync_api import Page, expect

from tests.browser.support import check_page, sign_in


def test_admin_approves_and_suspends_a_registration_in_place(desktop: Page, server: str) -> None:
    applied = desktop.request.post(
        f"{server}/api/departments",
        data={
            "name": "示范审计局",
            "village_name": "新河村",
            "village_county": "宁乡市",
            "village_province": "湖南省",
            "contact_name": "赵协调",
            "contact_phone": "0731-8000-0009",
            "pickup_location": "一楼大厅",
            "coordinator": {
                "username": "coord-c",
                "display_name": "协调员C",
                "password": "demo-pass",
            },
        },
    )
    assert applied.status == 201
    sign_in(desktop, "admin")
    row = desktop.locator("tr", has_text="示范审计局")
    expect(row).to_contain_text("待审核")
    check_page(desktop, "admin-departments")
    with desktop.expect_response(re.compile(r"/approve$")) as answer:
        row.get_by_role("button", name="批准").click()
    assert answer.value.request.headers.get("hx-request") == "true"  # swapped in place by htmx
    expect(row).to_contain_text("已备案")
    desktop.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="暂停").click()
    expect(row).to_contain_text("已暂停")
    desktop.reload()
    expect(desktop.locator("tr", has_text="示范审计局")).to_contain_text("已暂停")


def test_coordinator_imports_members_and_sees_every_bad_row(desktop: Page) -> None:
    sign_in(desktop, "coord-b")
    desktop.goto("/coord/members")
    bad = "username,display_name,roles\nemp-b9,职工B9,employee\nx,,boss\nemp-b1,重复,employee\n"
    desktop.get_by_label("CSV 文件", exact=True).set_input_files(
        {"name": "members.csv", "mimeType": "text/csv", "buffer": bad.encode()}
    )
    desktop.get_by_role("button", name="导入", exact=True).click()
    report = desktop.locator("table.problems tbody tr")
    expect(desktop.get_by_role("alert")).to_contain_text("未导入任何成员")
    expect(report.filter(has_text="username").first).to_contain_text("3")
    expect(report.filter(has_text="该用户名已被占用")).to_contain_text("4")
    expect(desktop.locator("tr", has_text="emp-b9")).to_have_count(0)  # nothing was imported
    check_page(desktop, "coordinator-members-import-errors")

    good = "username,display_name\nemp-b6,职工B6\nemp-b7,职工B7\n"
    desktop.get_by_label("CSV 文件", exact=True).set_input_files(
        {"name": "members.csv", "mimeType": "text/csv", "buffer": good.encode()}
    )
    desktop.get_by_role("button", name="导入", exact=True).click()
    # A job imports it (tests/browser/test_member_import.py follows its progress bar).
    expect(desktop.get_by_role("status")).to_contain_text("已导入 2 名成员")
    expect(desktop.locator("tr", has_text="emp-b7")).to_have_count(2)  # passwords, and the list

    desktop.get_by_label("用户名").fill("emp-b6")
    desktop.get_by_role("button", name="添加成员").click()
    expect(desktop.locator("#f-display_name-error")).to_have_text("请输入 1–100 个字符的姓名。")
    desktop.get_by_label("姓名").fill("另一位职工")
    desktop.get_by_role("button", name="添加成员").click()
    expect(desktop.locator("#f-username-error")).to_have_text("该用户名已被占用。")
    expect(desktop.get_by_label("用户名")).to_have_value("emp-b6")
    expect(desktop.get_by_label("姓名")).to_have_value("另一位职工")


def station_poster(desktop: Page, coordinator: str) -> str:
    sign_in(desktop, coordinator)
    desktop.goto("/coord/stations")
    link = desktop.locator("a.mono").first.inner_text()
    return re.sub(r"^https?://[^/]+", "", link)


def test_a_double_submit_logs_one_drop_off(desktop: Page, phone: Page, server: str) -> None:
    poster = station_poster(desktop, "coord-b")
    sign_in(phone, "emp-b2", next=poster)
    phone.get_by_label("墨盒").check()
    phone.get_by_label("数量").fill("2")
    form = phone.locator("form.dropoff")
    fields = {
        name: form.locator(f"[name={name}]").first.input_value()
        for name in ("_csrf_token", "idempotency_key", "quantity")
    }
    fields["category"] = "ink_cartridge"
    # The same form arriving twice, as a double tap or a resend on a flaky network would.
    first = phone.request.post(f"{server}{poster}", form=fields, max_redirects=0)
    second = phone.request.post(f"{server}{poster}", form=fields, max_redirects=0)
    assert first.status == second.status == 303
    assert first.headers["location"] == second.headers["location"]
    # And the button itself, tapped twice.
    phone.get_by_role("button", name="登记投放").dblclick()
    expect(phone).to_have_url(re.compile(first.headers["location"] + "$"))
    phone.goto("/home")
    expect(phone.locator("ul.activity li")).to_have_count(1)


def test_a_drop_off_posted_without_its_csrf_token_is_refused(
    desktop: Page, phone: Page, server: str
) -> None:
    poster = station_poster(desktop, "coord-b")
    sign_in(phone, "emp-b3", next=poster)
    refused = phone.request.post(
        f"{server}{poster}",
        form={"category": "ink_cartridge", "quantity": "1", "idempotency_key": "forged-1"},
        max_redirects=0,
        fail_on_status_code=False,
    )
    assert refused.status == 403
    phone.goto("/home")
    expect(phone.locator("ul.activity li")).to_have_count(0)


def test_the_dashboard_shows_todays_numbers(desktop: Page) -> None:
    sign_in(desktop, "coord-b")
    desktop.goto("/coord/dashboard")
    expect(desktop.get_by_role("heading", name=re.compile("今日数据"))).to_be_visible()
    check_page(desktop, "coordinator-dashboard")


def test_an_employee_cancels_an_order_and_gets_the_points_back(desktop: Page, phone: Page) -> None:
    poster = station_poster(desktop, "coord-b")
    sign_in(phone, "emp-b1", next=poster)
    phone.get_by_label("键盘鼠标").check()
    phone.get_by_label("数量").fill("5")  # 150 points, credited at once (automatic campaign)
    phone.get_by_role("button", name="登记投放").click()
    phone.goto("/catalog")
    phone.get_by_role("link", name="糯玉米").click()
    phone.get_by_role("button", name="继续").click()
    phone.get_by_role("button", name="确认下单").click()
    phone.goto("/home")
    expect(phone.locator(".stat").nth(2).locator(".value")).to_have_text("120")  # held
    phone.get_by_role("link", name="糯玉米 × 1").click()
    phone.once("dialog", lambda dialog: dialog.accept())
    phone.get_by_role("button", name="取消订单").click()
    expect(phone.locator("#order-status")).to_contain_text("已取消")
    expect(phone.get_by_role("img", name="领取二维码")).to_have_count(0)
    phone.goto("/home")
    expect(phone.locator(".stat.main .value")).to_have_text("150")
    expect(phone.locator(".stat").nth(2).locator(".value")).to_have_text("0")


def test_the_pickup_desk_fits_a_phone(phone: Page) -> None:
    sign_in(phone, "coord-b", next="/coord/pickup")
    expect(phone.get_by_label("领取码")).to_be_visible()
    check_page(phone, "phone-pickup-desk")
