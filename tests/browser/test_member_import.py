"""A member import in a real browser: the file is checked at once, then a job hashes the
passwords while the page shows a progress bar that fills (htmx asks again every second), and
the members, their one-time passwords and the member list appear when it is done.

The server's password hashes wait at a gate that the test opens a few at a time, so the page
is seen part-way, whatever the machine's speed."""

import re
import threading
from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from playwright.sync_api import Page, expect

from catalog import passwords
from tests.browser.support import check_page, sign_in

ROWS = 8
GIVE_UP_SECONDS = 60  # only reached if the test never opens the gate: the defect itself


class SteppedHasher(PasswordHasher):
    """A real (cheap) argon2id hasher whose hashes each wait for a permit from the test."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.permits = threading.Semaphore(0)

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        assert self.permits.acquire(timeout=GIVE_UP_SECONDS), "the test never let it hash"
        return super().hash(password, salt=salt)


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> Iterator[SteppedHasher]:
    stepped = SteppedHasher()
    monkeypatch.setattr(passwords, "_hasher", stepped)  # the server runs in this process
    yield stepped
    stepped.permits.release(ROWS)  # never leave the server's hashing threads waiting


def test_an_import_shows_a_progress_bar_that_fills_then_the_new_members(
    desktop: Page, hasher: SteppedHasher
) -> None:
    sign_in(desktop, "coord-a")
    desktop.goto("/coord/members")
    rows = "".join(f"imp-a{n},导入{n}\n" for n in range(ROWS))
    csv = f"username,display_name\n{rows}".encode()
    desktop.get_by_label("CSV 文件", exact=True).set_input_files(
        {"name": "members.csv", "mimeType": "text/csv", "buffer": csv}
    )
    desktop.get_by_role("button", name="导入", exact=True).click()

    expect(desktop).to_have_url(re.compile(r"/coord/members/imports/\w+$"))
    bar = desktop.get_by_role("progressbar", name="导入进度")
    expect(bar).to_have_attribute("max", str(ROWS))
    expect(bar).to_have_attribute("value", "0")
    check_page(desktop, "coordinator-members-import-progress")

    hasher.permits.release(ROWS // 2)
    expect(bar).to_have_attribute("value", str(ROWS // 2))
    expect(desktop.get_by_text(f"正在处理密码：{ROWS // 2} / {ROWS} 名成员。")).to_be_visible()
    expect(desktop.locator("tr", has_text="imp-a0")).to_have_count(0)  # all or nothing

    hasher.permits.release(ROWS - ROWS // 2)
    expect(desktop.get_by_role("status")).to_contain_text(f"已导入 {ROWS} 名成员")
    expect(bar).to_have_count(0)
    # Each new member twice: in the one-time passwords, and in the member list below.
    expect(desktop.locator("tr", has_text=f"imp-a{ROWS - 1}")).to_have_count(2)
    check_page(desktop, "coordinator-members-import-done")

    desktop.reload()  # the passwords were shown once
    expect(desktop.get_by_role("status")).to_contain_text(f"已导入 {ROWS} 名成员")
    expect(desktop.locator("tr", has_text=f"imp-a{ROWS - 1}")).to_have_count(1)
