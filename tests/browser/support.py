"""What browser tests do on every page: sign in, take a screenshot, check accessibility."""

from pathlib import Path

from playwright.sync_api import BrowserContext, Page

from api.demo import DEMO_PASSWORD

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
SCREENSHOTS = Path(__file__).parent.parent / "screenshots"


def sign_in(page: Page, username: str, password: str = DEMO_PASSWORD, next: str = "") -> None:
    page.goto("/login" + (f"?next={next}" if next else ""))
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state()


def csp_violations(context: BrowserContext) -> list[str]:
    """The Content-Security-Policy violations Chromium reports in this context from now on."""
    found: list[str] = []
    context.on(
        "console",
        lambda message: (
            found.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return found


def screenshot(page: Page, name: str) -> None:
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


SERIOUS = {"serious", "critical"}


def assert_accessible(page: Page) -> None:
    """axe-core's WCAG 2.1 A/AA rules (labels, contrast, names…) find nothing serious."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Evaluated through the DevTools protocol: a <script> tag would break the page's CSP.
        page.evaluate(AXE.read_text())
    violations = page.evaluate(
        """async () => (await axe.run(document, {
            runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
            resultTypes: ['violations'],
        })).violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ': ' + n.failureSummary),
        }))"""
    )
    serious = [v for v in violations if v["impact"] in SERIOUS]
    assert not serious, f"accessibility problems on {page.url}: {serious}"


def check_page(page: Page, name: str) -> None:
    """Every main page: a screenshot for people to look at, and the accessibility check."""
    screenshot(page, name)
    assert_accessible(page)
