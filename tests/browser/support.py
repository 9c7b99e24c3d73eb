"""What browser tests do on every page: sign in, take a screenshot, check accessibility."""

from pathlib import Path

import qrcode
from PIL import Image
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


def camera_feed(path: Path, texts: list[str], frames: int = 2, width: int = 640) -> None:
    """A Y4M video showing each of `texts` as a QR code for `frames` frames (at 10 a second),
    for Chromium's --use-file-for-fake-video-capture, which plays it in a loop."""
    height = width * 3 // 4
    side = min(width, height) - 40
    chroma = (width // 2, height // 2)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for text in texts:
            code = qrcode.make(text, border=4).convert("L").resize((side, side), Image.NEAREST)
            frame = Image.new("L", (width, height), 255)
            frame.paste(code, ((width - side) // 2, (height - side) // 2))
            y, cb, cr = frame.convert("RGB").convert("YCbCr").split()
            planes = y.tobytes() + cb.resize(chroma).tobytes() + cr.resize(chroma).tobytes()
            out.write((b"FRAME\n" + planes) * frames)
