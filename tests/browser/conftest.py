"""Browser tests: a real uvicorn server on a free port, driven by Debian's Chromium.

One server (SQLite, seeded with the demo data set) serves each module, on a copy of the
suite's migrated template: a module's writes never reach another's pages. Each test gets fresh
browser contexts, a phone (375×812) for employees and a desktop for everyone else.
Screenshots go to tests/screenshots/ (git-ignored) for people to look at.
"""

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from api import db
from api.app import create_app
from api.demo import seed_demo
from api.settings import Settings
from tests.browser.support import SCREENSHOTS, csp_violations
from tests.conftest import _in_a_thread, seed_database
from tests.foundation.test_ops import free_port

CHROMIUM = os.environ.get("EXCHANGE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# An empty PostgreSQL database for the servers instead of SQLite, which the modules then share
# (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/browser).
OWN_DATABASE_URL = os.environ.get("EXCHANGE_TEST_BROWSER_DATABASE_URL", "")
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}


def launch_with_camera(playwright: Playwright, feed: Path) -> Browser:
    """Chromium whose camera, allowed without asking, plays `feed` (support.camera_feed)."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={feed}",
        ],
    )


@pytest.fixture(scope="module")
def browser_settings(
    tmp_path_factory: pytest.TempPathFactory, sqlite_demo_template: Path
) -> Settings:
    """The test server's settings: tests that seed data of their own reach its database."""
    data_dir = tmp_path_factory.mktemp("browser-data")
    shutil.copy(sqlite_demo_template, data_dir / "exchange.db")  # the default database's place
    return Settings(
        data_dir=data_dir,
        database_url=OWN_DATABASE_URL,
        login_attempts_per_minute=10_000,
        request_deadline_seconds=60,  # as tests/conftest.py: a loaded machine is not an outage
        log_format="json",
        log_level="WARNING",
        public_base_url=f"http://127.0.0.1:{free_port()}",
        # No notification worker: nothing a test sets up may be posted to a real platform.
        notify_interval_seconds=3600,
    )


@pytest.fixture(scope="module")
def server(browser_settings: Settings) -> Iterator[str]:
    settings = browser_settings
    base_url = settings.public_base_url
    port = int(base_url.rsplit(":", 1)[1])
    settings.ensure_data_dir()
    if OWN_DATABASE_URL:  # not a copy of the demo template: migrate and seed it
        _in_a_thread(lambda: db.upgrade(settings.database_url))
        seed_database(settings.database_url, seed_demo)
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False
    )
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield base_url
    uvicorn_server.should_exit = True
    thread.join(timeout=10)


# Package scope, not session: while Playwright's sync API is active it runs an event loop in
# the main thread, which would break every asyncio test run after it on the same worker. A
# worker that runs browser modules one after another keeps Playwright and Chromium (a second
# of CPU to start); each module still gets its own server and database.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        missing = f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)"
        if os.environ.get("CI"):  # in CI the pages must be tried, never skipped
            pytest.fail(missing)
        pytest.skip(missing)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture(scope="session", autouse=True)
def _screenshot_dir() -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)


def _context(
    browser: Browser, server: str, viewport: dict[str, int], **options: object
) -> BrowserContext:
    context = browser.new_context(
        base_url=server, viewport=viewport, locale="zh-CN", timezone_id="Asia/Shanghai", **options
    )
    context.set_default_timeout(10_000)
    return context


@pytest.fixture
def new_phone(browser: Browser, server: str) -> Iterator[Callable[[], Page]]:
    """Opens pages on phones, each its own browser context (cookies, session)."""
    contexts: list[BrowserContext] = []
    violations: list[list[str]] = []

    def open_page() -> Page:
        context = _context(
            browser, server, PHONE, is_mobile=True, has_touch=True, device_scale_factor=2
        )
        contexts.append(context)
        violations.append(csp_violations(context))
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()
    assert not [v for found in violations for v in found], "the CSP refused something"


@pytest.fixture
def new_desktop(browser: Browser, server: str) -> Iterator[Callable[[], Page]]:
    contexts: list[BrowserContext] = []
    violations: list[list[str]] = []

    def open_page() -> Page:
        context = _context(browser, server, DESKTOP)
        contexts.append(context)
        violations.append(csp_violations(context))
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()
    assert not [v for found in violations for v in found], "the CSP refused something"


@pytest.fixture
def phone(new_phone: Callable[[], Page]) -> Page:
    return new_phone()


@pytest.fixture
def desktop(new_desktop: Callable[[], Page]) -> Page:
    return new_desktop()
