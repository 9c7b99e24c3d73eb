"""Signing in and out, the language switch, CSRF, and the error pages, in a real browser."""

import re

from playwright.sync_api import Page, expect

from tests.browser.support import check_page, sign_in


def test_a_page_that_needs_an_account_sends_to_sign_in_and_back(desktop: Page) -> None:
    desktop.goto("/admin/departments")
    expect(desktop).to_have_url(re.compile(r"/login\?next=/admin/departments$"))
    expect(desktop.get_by_role("heading", name="登录")).to_be_visible()
    check_page(desktop, "login")
    desktop.get_by_label("用户名").fill("admin")
    desktop.get_by_label("密码").fill("demo-pass")
    desktop.get_by_role("button", name="登录").click()
    expect(desktop).to_have_url(re.compile(r"/admin/departments$"))


def test_a_wrong_password_is_said_next_to_the_form_and_keeps_the_username(phone: Page) -> None:
    sign_in(phone, "emp-a1", password="not-the-password")
    expect(phone.get_by_role("alert")).to_contain_text("用户名或密码不正确")
    expect(phone.get_by_label("用户名")).to_have_value("emp-a1")
    expect(phone.get_by_label("密码")).to_have_value("")
    check_page(phone, "login-error")


def test_empty_fields_are_named_next_to_each_field(phone: Page) -> None:
    phone.goto("/login")
    phone.get_by_role("button", name="登录").click()
    expect(phone.locator("#f-username-error")).to_have_text("请输入用户名。")
    expect(phone.locator("#f-password-error")).to_have_text("请输入密码。")
    expect(phone.get_by_label("用户名")).to_have_attribute("aria-invalid", "true")


def test_english_can_be_chosen_and_sticks(phone: Page) -> None:
    phone.goto("/login")
    phone.get_by_label("语言").select_option("en")
    phone.get_by_role("button", name="切换").click()
    expect(phone.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(phone.locator("html")).to_have_attribute("lang", "en")
    phone.get_by_label("Username").fill("admin")
    phone.get_by_label("Password").fill("demo-pass")
    phone.get_by_role("button", name="Sign in").click()
    expect(phone.get_by_role("heading", name="Department registrations")).to_be_visible()
    expect(phone.get_by_role("link", name="Departments")).to_be_visible()


def test_a_form_post_without_its_csrf_token_is_refused(desktop: Page, server: str) -> None:
    sign_in(desktop, "admin")
    response = desktop.request.post(
        f"{server}/logout", form={"next": "/"}, max_redirects=0, fail_on_status_code=False
    )
    assert response.status == 403
    assert "表单已过期" in response.text()
    # Still signed in: the refused post did nothing.
    desktop.goto("/admin/departments")
    expect(desktop.get_by_role("heading", name="部门备案")).to_be_visible()


def test_sign_out_ends_the_session(desktop: Page) -> None:
    sign_in(desktop, "admin")
    desktop.get_by_role("button", name="退出登录").click()
    expect(desktop).to_have_url(re.compile(r"/login$"))
    desktop.goto("/admin/departments")
    expect(desktop).to_have_url(re.compile(r"/login\?next="))


def test_a_page_of_another_role_is_refused_politely(phone: Page) -> None:
    sign_in(phone, "emp-a1")
    phone.goto("/admin/departments")
    expect(phone.get_by_role("heading", name="无权访问")).to_be_visible()
    check_page(phone, "forbidden")


def test_an_unknown_address_gets_a_page_and_the_api_a_problem(phone: Page, server: str) -> None:
    sign_in(phone, "emp-a1")
    answer = phone.goto("/no-such-page")
    assert answer is not None and answer.status == 404
    expect(phone.get_by_role("heading", name="未找到")).to_be_visible()
    api = phone.request.get(f"{server}/api/no-such-thing", fail_on_status_code=False)
    assert api.status == 404
    assert api.headers["content-type"].startswith("application/problem+json")


def test_each_role_starts_on_its_own_page(desktop: Page) -> None:
    for username, heading in [("admin", "部门备案"), ("auditor", "账本"), ("emp-a2", "我的积分")]:
        sign_in(desktop, username)
        desktop.goto("/")
        expect(desktop.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        desktop.get_by_role("button", name="退出登录").click()
