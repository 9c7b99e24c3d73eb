"""我的凭证 in Chromium: the employee's own browser checks every receipt (SHA-256, the audit
path, the head's Ed25519 signature, through WebCrypto and, where that lacks Ed25519, the
vendored @noble/ed25519), keeps the head it verified and checks on the next visit that the
log only grew; a downloaded receipt verifies with `exchange receipt verify`."""

import asyncio
import json
import threading
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from playwright.sync_api import Page, expect
from sqlmodel import select

from api import db
from api.cli import main as cli
from api.settings import Settings
from api.sweep import integrate_once
from catalog.models import User
from exchange.points import dropoff_reference, earning, order_reference, spending
from ledger import transfer
from tests.browser.support import check_page, sign_in

# Makes WebCrypto answer as a browser without Ed25519 does, so the vendored verifier runs.
WITHOUT_ED25519 = """
const importKey = crypto.subtle.importKey.bind(crypto.subtle);
crypto.subtle.importKey = (format, key, algorithm, ...rest) =>
  (algorithm && (algorithm.name || algorithm) === "Ed25519")
    ? Promise.reject(new DOMException("Ed25519 is not supported", "NotSupportedError"))
    : importKey(format, key, algorithm, ...rest);
"""


@pytest.fixture(scope="module")
def history(browser_settings: Settings, server: str) -> None:
    """emp-a1 and emp-a2 earn points and emp-a1 holds some for an order, written to the
    ledger as the exchange writes them (the browser tests' demo data has no history), and
    signed into a head as the server's sweeper does every second: a page opened before its
    next round would show every receipt still waiting for its signature."""

    async def seed() -> None:
        engine = db.create_engine(browser_settings.database_url)
        sessions = db.create_session_factory(engine)
        try:
            async with db.transaction(sessions) as session:
                users = {
                    u.username: u
                    for u in (
                        await session.exec(select(User).where(User.username.like("emp-a%")))
                    ).all()
                }
                for n, (who, amount) in enumerate([("emp-a1", 80), ("emp-a2", 40), ("emp-a1", 20)]):
                    user = users[who]
                    await transfer(
                        session,
                        ledger_id=user.department_id,
                        **earning(user.id),
                        amount=amount,
                        idempotency_key=f"receipts-browser:{n}",
                        actor=user.id,
                        reference=dropoff_reference(f"receipts-{n}"),
                    )
                a1 = users["emp-a1"]
                await transfer(
                    session,
                    ledger_id=a1.department_id,
                    **spending(a1.id),
                    amount=60,
                    idempotency_key="receipts-browser:order",
                    actor=a1.id,
                    reference=order_reference("receipts-order"),
                    pending=True,
                )
            await integrate_once(sessions, browser_settings.keyring)
        finally:
            await engine.dispose()

    # Playwright's sync API runs an event loop in this thread; the seeding needs its own.
    thread = threading.Thread(target=lambda: asyncio.run(seed()))
    thread.start()
    thread.join()


def verified_receipts(page: Page) -> int:
    """Waits for the browser's checks; answers how many receipts it verified."""
    badges = page.locator(".receipt-check:not(.pending)")
    expect(badges.first).to_have_attribute("data-verified", "yes")
    count = badges.count()
    for i in range(count):
        expect(badges.nth(i)).to_have_attribute("data-verified", "yes")
    return count


def test_my_receipts_are_verified_by_the_browser_and_the_log_is_checked_on_each_visit(
    phone: Page, tmp_path: Path, server: str, history: None
) -> None:
    sign_in(phone, "emp-a1")
    phone.goto("/me/receipts")
    expect(phone.get_by_role("heading", name="我的凭证")).to_be_visible()
    assert verified_receipts(phone) >= 3  # the demo's history: drop-offs and orders
    log = phone.locator("#log-check")
    expect(log).to_have_attribute("data-state", "first")
    check_page(phone, "employee-receipts")

    phone.reload()  # the next visit: the kept head must be a prefix of today's
    expect(log).to_have_attribute("data-state", "ok")
    expect(log).to_have_class("notice ok")

    with phone.expect_download() as download:
        phone.locator(".receipts li a[download]").first.click()
    receipt = tmp_path / "receipt.json"
    download.value.save_as(receipt)
    keys = tmp_path / "keys.json"
    keys.write_text(httpx.get(f"{server}/api/keys").text)
    result = CliRunner().invoke(cli, ["receipt", "verify", str(receipt), "--jwks", str(keys)])
    assert result.exit_code == 0, result.output
    assert json.loads(receipt.read_text())["pending"] is False


def test_a_browser_without_ed25519_in_webcrypto_checks_with_the_vendored_verifier(
    phone: Page, history: None
) -> None:
    phone.context.add_init_script(WITHOUT_ED25519)
    sign_in(phone, "emp-a2")
    phone.goto("/me/receipts")
    assert verified_receipts(phone) >= 1
    assert (
        phone.evaluate("async () => (await import('/static/js/ed25519.js')).ed25519Engine")
        == "noble"
    )
    # The vendored verifier refuses a changed signature too.
    refused = phone.evaluate(
        """async () => {
            const { verifyEd25519, unb64url } = await import('/static/js/ed25519.js');
            const jwk = (await (await fetch('/api/keys')).json()).keys[0];
            const signature = new Uint8Array(64); signature[0] = 1;
            return verifyEd25519(jwk, signature, new Uint8Array([1, 2, 3]));
        }"""
    )
    assert refused is False
