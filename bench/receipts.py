"""Receipt verification time (issue 16): `exchange receipt verify` as a command and the check
inside it, and the employee's browser's check in Chromium, through WebCrypto and through the
vendored @noble/ed25519 (what a browser without Ed25519 in WebCrypto runs).

    uv run python bench/receipts.py                  # a log of 20,000 entries, 20 rounds
    uv run python bench/receipts.py --entries 100000 --rounds 50

It writes a scratch SQLite database in a temporary directory, serves it with the app on a free
port for the browser, and prints tables (bench/README.md).
"""

from __future__ import annotations

# ruff: noqa: E402  (the path is set before the project's imports)
import sys
from pathlib import Path

# The project root, not bench/ (whose http.py would shadow the standard library's http).
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from typing import Any

import uvicorn
from playwright.sync_api import sync_playwright

from api import db
from api.app import create_app
from api.controllers.receipts import receipt_document
from api.settings import Settings
from bench.tables import out, table
from exchange.points import dropoff_reference, earning
from ledger import get_entry, transfer
from ledger.proofs import complete_receipt
from ledger.receipts import check_receipt
from ledger.signing import KeyRing

EXCHANGE = Path(sys.executable).with_name("exchange")
CHROMIUM = "/usr/bin/chromium"
WITHOUT_ED25519 = """
const importKey = crypto.subtle.importKey.bind(crypto.subtle);
crypto.subtle.importKey = (format, key, algorithm, ...rest) =>
  (algorithm && (algorithm.name || algorithm) === "Ed25519")
    ? Promise.reject(new DOMException("Ed25519 is not supported", "NotSupportedError"))
    : importKey(format, key, algorithm, ...rest);
"""
# First check (module loads, the JWKS fetch, the key import), then `rounds` more.
BROWSER_CHECK = """async ([receipt, rounds]) => {
  let t = performance.now();
  const { receiptProblem } = await import('/static/js/receipt.js');
  const first = await receiptProblem(receipt);
  const cold = performance.now() - t;
  const warm = [];
  for (let i = 0; i < rounds; i++) {
    t = performance.now();
    if ((await receiptProblem(receipt)) !== null) throw new Error('did not verify');
    warm.push(performance.now() - t);
  }
  const engine = (await import('/static/js/ed25519.js')).ed25519Engine;
  return { first, cold, warm, engine };
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def make_receipt(settings: Settings, entries: int) -> dict[str, Any]:
    """A department log of `entries` drop-offs of 50 employees; the receipt of the middle one."""
    engine = db.create_engine(settings.database_url)
    factory = db.create_session_factory(engine)
    try:
        async with db.transaction(factory) as session:
            for n in range(entries):
                await transfer(
                    session,
                    ledger_id="bench-dept",
                    **earning(f"user{n % 50}"),
                    amount=20,
                    idempotency_key=f"d{n}",
                    actor="bench",
                    reference=dropoff_reference(str(n)),
                )
        async with db.transaction(factory) as session:
            entry = await get_entry(session, "bench-dept", entries // 2)
            receipt = await complete_receipt(session, entry, settings.keyring)
        return receipt_document(receipt, entry.credit_account)
    finally:
        await engine.dispose()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        settings = Settings(
            data_dir=Path(tmp) / "data",
            database_url=f"sqlite+aiosqlite:///{tmp}/bench.db",
            log_format="json",
            log_level="WARNING",
            public_base_url=f"http://127.0.0.1:{port}",
            notify_interval_seconds=3600,
        )
        settings.ensure_data_dir()
        db.upgrade(settings.database_url)
        out(f"writing a log of {args.entries:,} entries …")
        receipt = asyncio.run(make_receipt(settings, args.entries))
        path = Path(tmp) / "receipt.json"
        path.write_text(json.dumps(receipt, ensure_ascii=False))
        keys_path = Path(tmp) / "keys.json"
        keys_path.write_text(json.dumps(settings.keyring.jwks()))
        audit_path = len(receipt["inclusion_proof"]["audit_path"])

        keys = KeyRing.from_jwks(settings.keyring.jwks())
        inside = []
        for _ in range(args.rounds):
            t = time.perf_counter()
            assert check_receipt(receipt, keys).ok
            inside.append(time.perf_counter() - t)

        def timed(argv: list[str]) -> list[float]:
            times = []
            for _ in range(args.rounds):
                t = time.perf_counter()
                subprocess.run(argv, check=True, capture_output=True)
                times.append(time.perf_counter() - t)
            return times

        command = timed([str(EXCHANGE), "receipt", "verify", str(path), "--jwks", str(keys_path)])
        bare = timed([sys.executable, "-c", "pass"])
        table(
            f"CLI: one receipt of a {args.entries:,}-entry log (audit path of {audit_path} "
            f"hashes), {args.rounds} rounds",
            ["what", "median ms", "min ms", "max ms"],
            [
                ["check_receipt (the verification itself)", ms(statistics.median(inside)),
                 ms(min(inside)), ms(max(inside))],
                ["`exchange receipt verify` (process start to exit)",
                 ms(statistics.median(command)), ms(min(command)), ms(max(command))],
                ["`python -c pass` (the interpreter alone, for scale)",
                 ms(statistics.median(bare)), ms(min(bare)), ms(max(bare))],
            ],
        )  # fmt: skip

        server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        rows = []
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            for label, script in (
                ("WebCrypto", None),
                ("vendored @noble/ed25519", WITHOUT_ED25519),
            ):
                context = chromium.new_context(base_url=settings.public_base_url)
                if script:
                    context.add_init_script(script)
                page = context.new_page()
                page.goto("/login")
                found = page.evaluate(BROWSER_CHECK, [receipt, args.rounds])
                assert found["first"] is None, found
                warm = found["warm"]
                rows.append(
                    [f"{label} ({found['engine']})", f"{found['cold']:.2f}",
                     f"{statistics.median(warm):.2f}", f"{min(warm):.2f}", f"{max(warm):.2f}"]
                )  # fmt: skip
                context.close()
            chromium.close()
        server.should_exit = True
        thread.join(timeout=10)
        table(
            f"Chromium: the same receipt checked by the page's own script (js/receipt.js), "
            f"{args.rounds} rounds after the first",
            ["Ed25519 by", "first check ms", "median ms", "min ms", "max ms"],
            rows,
        )
        out(
            "\nfirst check: loading the modules, fetching /api/keys and importing the key; "
            "then each check hashes the entry and the path and verifies the signature again."
        )


if __name__ == "__main__":
    main()
