"""Every main page runs under the strict Content-Security-Policy: Chromium reports no
violation on any of them (the browser fixtures also watch every other browser test)."""

import re
from collections.abc import Callable

from playwright.sync_api import Browser, Page, expect

from tests.browser.support import csp_violations, sign_in

PAGES = {
    "emp-a1": ["/home", "/catalog", "/orders"],
    "coord-a": [
        "/coord/dropoffs",
        "/coord/pickup",
        "/coord/products",
        "/coord/members",
        "/coord/dashboard",
        "/coord/stations",  # last: the posters and a station's page are found from it
    ],
    "auditor": ["/audit/ledger", "/audit/balances", "/audit/tree-head"],
    "admin": ["/admin/departments", "/admin/campaigns"],
}


def visit(page: Page, path: str) -> None:
    response = page.goto(path)
    assert response is not None and response.status < 500, path
    assert "default-src 'self'" in response.headers["content-security-policy"], path
    page.wait_for_load_state("networkidle")


def test_no_main_page_breaks_the_content_security_policy(
    new_desktop: Callable[[], Page],
) -> None:
    anonymous = new_desktop()
    violations = [csp_violations(anonymous.context)]
    for path in ("/login", "/no-such-page"):
        visit(anonymous, path)

    for user, paths in PAGES.items():
        page = new_desktop()
        violations.append(csp_violations(page.context))
        sign_in(page, user)
        for path in paths:
            visit(page, path)
        if user == "coord-a":
            posters = page.locator("a[href$='/stations/posters']").get_attribute("href")
            station = page.locator("a.mono").first.get_attribute("href")
            for path in (posters, station):
                assert path
                visit(page, path)
            expect(page.get_by_role("button", name="登记投放")).to_be_visible()
    assert [v for found in violations for v in found] == []


def test_the_api_documentation_renders_under_its_own_policy(browser: Browser, server: str) -> None:
    """The vendored Redoc runs from /static under the /schema policy (scripts still only the
    app's own). The one thing refused is Redoc's footer logo from its CDN: the point."""
    context = browser.new_context(base_url=server)
    violations = csp_violations(context)
    try:
        page = context.new_page()
        visit(page, "/schema")
        heading = page.get_by_role("heading", name=re.compile("Cloud Exchange API"))
        expect(heading).to_be_visible(timeout=30_000)  # Redoc renders a large schema
        expect(page.get_by_text("/api/auth/token").first).to_be_attached()
    finally:
        context.close()
    assert all("https://cdn.redoc.ly/" in v and "img-src" in v for v in violations), violations
