"""The `exchange` command: serve, migrate, demo data, user administration.

Each command imports what it needs when it runs: `exchange receipt verify`, run by anyone
on their own machine, then starts in a fraction of the time the service's imports take."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import async_sessionmaker
    from sqlmodel.ext.asyncio.session import AsyncSession

    from api.settings import Settings

T = TypeVar("T")


def _run(main: Coroutine[Any, Any, T]) -> T:
    import asyncio  # here: it costs a command that needs no event loop 0.1-0.2 s to start

    return asyncio.run(main)


@click.group()
def main() -> None:
    """Cloud Exchange (云兑换): recyclables to points to poverty-relief products."""


SERVERS = ("uvicorn", "uvicorn-h11", "granian")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="worker processes  [default: the number of cores]",
)
@click.option(
    "--server",
    type=click.Choice(SERVERS),
    default="uvicorn",
    show_default=True,
    help="the HTTP server: uvicorn with uvloop and httptools; the others are there for "
    "bench/http.py to compare (uvicorn-h11: pure-Python HTTP on asyncio's own loop; granian "
    "needs the dev dependencies and ignores EXCHANGE_TRUSTED_PROXIES)",
)
def serve(host: str, port: int, workers: int | None, server: str) -> None:
    """Run the service (migrates the database first).

    Each worker is a process of its own with its own connections; exactly one of them runs
    the expiry sweep. On SIGTERM or Ctrl-C they stop accepting connections and finish the
    requests in flight. On SQLite all workers share the one database file, whose writes
    take turns: more workers add throughput to reads and request handling, not to writes.
    """
    from api.settings import Settings

    settings = prepare(Settings())
    run_server("api.app:create_app", settings, host, port, workers or os.cpu_count() or 1, server)


def prepare(settings: Settings) -> Settings:
    """Once, before any worker starts: they would otherwise race to create the schema, the
    JWT secret and the signing keys."""
    from api import db

    settings.ensure_data_dir()
    db.upgrade_unless_at_head(settings.database_url)
    settings.jwt_signing_secret  # noqa: B018
    settings.keyring  # noqa: B018
    return settings


def run_server(
    app_factory: str, settings: Settings, host: str, port: int, workers: int, server: str
) -> None:
    """Serve the ASGI app that `app_factory` ("module:function") makes, in `workers`
    processes (one: in this process). bench/raw_dropoffs.py is served by this too, so that a
    benchmark compares the service and its baseline on the same server software."""
    import uvicorn

    if server == "granian":
        from granian.constants import Interfaces
        from granian.server import Server

        Server(
            app_factory,
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            workers=workers,
            factory=True,
            log_access=False,
        ).serve()
        return
    uvicorn.run(
        app_factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # A new worker re-imports this command before it can answer the supervisor's pings;
        # on a busy machine that takes longer than uvicorn's default of 5 s, which would
        # kill and respawn it forever.
        timeout_worker_healthcheck=60,
        **uvicorn_options(settings, fast=server == "uvicorn"),
    )


def uvicorn_options(settings: Settings, *, fast: bool = True) -> dict[str, Any]:
    """How uvicorn serves the app. Forwarded headers count only from EXCHANGE_TRUSTED_PROXIES:
    uvicorn's own default would believe any X-Forwarded-For sent from 127.0.0.1."""
    trusted = settings.trusted_proxies.strip()
    return {
        # uvloop and httptools (C) rather than asyncio's own loop and h11 (pure Python), as
        # measured with bench/http.py (bench/README.md); `fast=False` is the comparison.
        "loop": "uvloop" if fast else "asyncio",
        "http": "httptools" if fast else "h11",
        "log_config": None,
        "access_log": False,
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or "",
        # How long a stopping server waits for requests in flight before cancelling them.
        "timeout_graceful_shutdown": settings.shutdown_timeout_seconds,
    }


@main.group(name="db")
def db_group() -> None:
    """Database schema."""


@db_group.command()
def upgrade() -> None:
    """Apply every pending migration."""
    from api import db
    from api.settings import Settings

    settings = Settings()
    settings.ensure_data_dir()
    db.upgrade(settings.database_url)
    click.echo("database is up to date")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def demo(host: str, port: int) -> None:
    """Create the demo data set (idempotent), print its accounts, and serve exactly as
    `exchange serve --workers 1` does."""
    from api.demo import DEMO_PASSWORD, seed_demo
    from api.settings import Settings

    settings = prepare(Settings())
    accounts = _run(_with_sessions(settings, lambda f: seed_demo(f, settings)))
    click.echo(f"\nDemo accounts (password for all: {DEMO_PASSWORD}):")
    for account in accounts:
        click.echo(f"  {account.username:<10} {account.roles:<24} {account.department}")
    click.echo(f"\nOpen http://{host}:{port}/ — API docs at http://{host}:{port}/schema\n")
    run_server("api.app:create_app", settings, host, port, 1, "uvicorn")


@main.group()
def users() -> None:
    """User accounts."""


@users.command("create")
@click.argument("username")
@click.option("--display-name", required=True)
@click.option(
    "--role", "roles", multiple=True, required=True, help="admin, coordinator, auditor, employee"
)
@click.option(
    "--department", "department_id", default=None, help="department id; none for platform-wide"
)
@click.option("--password", default=None, help="prompted for when not given")
def create_user(
    username: str,
    display_name: str,
    roles: tuple[str, ...],
    department_id: str | None,
    password: str | None,
) -> None:
    """Create a user, e.g. the first platform admin."""
    from api import db
    from api.settings import Settings
    from catalog.errors import CatalogError
    from catalog.identity import create_user as create

    if not password:
        import getpass

        password = getpass.getpass("Password: ")
    settings = Settings()
    settings.ensure_data_dir()
    db.upgrade(settings.database_url)

    async def run(session_factory: async_sessionmaker[AsyncSession]) -> str:
        async with db.transaction(session_factory) as session:
            user = await create(
                session,
                username=username,
                display_name=display_name,
                password=password,
                department_id=department_id,
                roles=list(roles),
            )
            return user.id

    try:
        user_id = _run(_with_sessions(settings, run))
    except CatalogError as error:
        raise click.ClickException(error.detail) from None
    click.echo(f"created user {username} ({user_id})")


@users.command("unlock")
@click.argument("username")
def unlock_user(username: str) -> None:
    """Lift a sign-in lockout, e.g. a platform admin's (coordinators unlock their members)."""
    from sqlmodel import select

    from api import db
    from api.settings import Settings
    from catalog import lockout
    from catalog.models import User

    async def run(session_factory: async_sessionmaker[AsyncSession]) -> bool:
        async with db.transaction(session_factory) as session:
            found = await session.exec(select(User.id).where(User.username == username))
            user_id = found.first()
            if user_id is not None:
                await lockout.clear(session, user_id)
            return user_id is not None

    if not _run(_with_sessions(Settings(), run)):
        raise click.ClickException(f"no user {username!r}")
    click.echo(f"{username} can sign in again")


async def _with_sessions(
    settings: Settings, work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]
) -> T:
    from api import db

    engine = db.create_engine(settings.database_url, settings.db_timeouts)
    try:
        return await work(db.create_session_factory(engine))
    finally:
        await engine.dispose()


@main.group(name="ledger")
def ledger_group() -> None:
    """The points ledger: offline verification and the expiry sweep."""


@ledger_group.command("verify")
@click.argument("export", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--tree-head",
    "tree_head",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="signed tree head JSON (GET …/ledger/tree-head)",
)
@click.option(
    "--keys",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JWKS JSON of the public keys (GET /api/keys)",
)
@click.option(
    "--processes",
    type=click.IntRange(1, 2),
    default=None,
    help="2: two processes each hash and replay half the export; 1: all in one; the "
    "findings are the same  [default: 2 for a large export on two or more cores]",
)
def ledger_verify(
    export: Path, tree_head: Path | None, keys: Path | None, processes: int | None
) -> None:
    """Verify an exported log offline; exit 0 only if every rule holds."""
    from ledger.verify import verify_files

    result = verify_files(export, tree_head, keys, processes)
    for finding in result.findings:
        click.echo(str(finding))
    if result.findings:
        read = "" if result.entries is None else f" in {result.entries} entries"
        click.echo(f"FAILED: {len(result.findings)} finding(s){read}")
        raise SystemExit(1)
    covered = "signed tree head" if tree_head else "no tree head given"
    click.echo(f"OK: {result.entries} entries, every rule holds ({covered})")


@ledger_group.command("sweep")
def ledger_sweep() -> None:
    """Expire overdue orders and void expired pending transfers now."""
    from api.settings import Settings
    from api.sweep import sweep_once

    settings = Settings()
    orders, pendings = _run(_with_sessions(settings, sweep_once))
    click.echo(f"expired {orders} order(s), voided {pendings} pending transfer(s)")


@main.group(name="receipt")
def receipt_group() -> None:
    """Receipts: an employee's proof that the log holds an entry of their account."""


@receipt_group.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--jwks",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JWKS JSON of the published public keys (GET /api/keys)",
)
@click.option(
    "--language",
    type=click.Choice(["en", "zh"]),
    default="en",
    show_default=True,
    help="what happened, in this language (zh loads the service's catalog: slower to start)",
)
def receipt_verify(file: Path, jwks: Path, language: str) -> None:
    """Verify a receipt offline (format: ledger/README.md); exit 0 only if it holds."""
    import gettext
    import json

    from exchange.receipt_words import describe
    from ledger.receipts import check_receipt
    from ledger.signing import KeyRing

    try:
        receipt = json.loads(file.read_bytes())
        keys = KeyRing.from_jwks(json.loads(jwks.read_bytes()))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        click.echo(f"FAILED: cannot read the receipt or the keys: {error}")
        raise SystemExit(1) from None
    check = check_receipt(receipt, keys)
    entry, head = check.entry, check.head
    what = "the receipt"
    if entry is not None:
        what = f"entry {entry['seq']} of department {entry['ledger_id']}"
    if not check.ok:
        click.echo(f"FAILED: {what} is not proven")
        for problem in check.problems:
            click.echo(f"  - {problem}")
        raise SystemExit(1)
    assert entry is not None and head is not None
    account = receipt.get("account", "")
    click.echo(f"OK: {what} is in the department's signed log")
    if language == "en":  # the message ids are the English text
        words = gettext.NullTranslations()
    else:
        from api.i18n import translations

        words = translations(language)
    click.echo(f"  {describe(entry, account, words)}")
    click.echo(
        f"  - the entry's bytes hash to leaf {entry['seq'] - 1}, and its audit path of "
        f"{len(receipt['inclusion_proof']['audit_path'])} hashes leads to root "
        f"{head.root_hash.hex()}"
    )
    click.echo(
        f"  - that root, of the log's first {head.tree_size} entries, is signed with Ed25519 "
        f"by key {head.key_id} of {jwks.name} at {receipt['tree_head']['timestamp']}"
    )
    click.echo(
        "  This proves the service committed to a log whose entry "
        f"{entry['seq']} is exactly these bytes; a consistency proof from this head to any "
        "later one shows it was never taken back or changed."
    )


@main.group(name="witness")
def witness_group() -> None:
    """A witness: an outside party's process that co-signs every department's tree heads
    after checking each extends the last it co-signed (README, "Running a witness")."""


def _witness_key_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--key",
        "key_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=Path("witness-key.pem"),
        show_default=True,
        help="the witness's Ed25519 private key (PEM); generated if missing",
    )(function)


@witness_group.command("key")
@_witness_key_option
def witness_key(key_path: Path) -> None:
    """Print the witness's public key, for the platform operator to register."""
    from api.witness import load_or_create_key, public_key_text

    key = load_or_create_key(key_path)
    click.echo(f"key id {key.kid}\npublic key {public_key_text(key)}")


@witness_group.command("run")
@click.option("--url", required=True, help="the service, e.g. https://exchange.example.cn")
@_witness_key_option
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("witness-state.json"),
    show_default=True,
    help="the last head co-signed per department, and the forks seen",
)
@click.option("--interval", type=click.FloatRange(min=0.05), default=5.0, show_default=True)
@click.option("--once", is_flag=True, help="one round; exit 1 if any department is refused")
def witness_run(url: str, key_path: Path, state_path: Path, interval: float, once: bool) -> None:
    """Poll every department's newest head, check it, co-sign it, submit the cosignature."""
    import sys
    import time

    import httpx
    import structlog

    from api.witness import State, Witness, load_or_create_key

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    log = structlog.get_logger("exchange.witness")
    key = load_or_create_key(key_path)
    log.info("witness started", key_id=key.kid, url=url)
    with httpx.Client(base_url=url, timeout=10.0) as client:
        witness = Witness(client, key, State.load(state_path))
        while True:
            try:
                done = witness.poll()
            except (httpx.HTTPError, ValueError) as error:  # restarting, the network, not JSON
                log.warning("service unreachable; trying again", error=str(error))
                done = None
            if once:
                raise SystemExit(0 if done is not None and not done.refused else 1)
            time.sleep(interval)


@witness_group.command("register")
@click.argument("name")
@click.argument("public_key")
def witness_register(name: str, public_key: str) -> None:
    """The operator's side: let the witness NAME with PUBLIC_KEY (from `exchange witness
    key`) co-sign this service's heads."""
    from api import db
    from api.settings import Settings
    from ledger.errors import LedgerError
    from ledger.signing import b64url_decode
    from ledger.witness import register_witness

    try:
        raw = b64url_decode(public_key)
        if len(raw) != 32:
            raise ValueError("not 32 bytes")
    except ValueError as error:
        raise click.BadParameter(f"not a base64url Ed25519 public key: {error}") from None

    async def run(session_factory: async_sessionmaker[AsyncSession]) -> str:
        async with db.transaction(session_factory) as session:
            return await register_witness(session, name, raw)

    try:
        kid = _run(_with_sessions(Settings(), run))
    except LedgerError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"witness {name} registered, key id {kid}")


@main.group(name="reports")
def reports_group() -> None:
    """Report rollups: the counters reports are read from."""


async def _on_connection(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    from api import db

    engine = db.create_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            return await work(conn)
    finally:
        await engine.dispose()


@reports_group.command("check")
def reports_check() -> None:
    """Recompute every rollup from the raw rows, and every folded month from its day rows;
    exit 1 on any difference."""
    from api.settings import Settings
    from exchange.reports import rollups

    differences = _run(_on_connection(Settings(), rollups.check))
    for difference in differences:
        click.echo(str(difference))
    if differences:
        click.echo(f"FAILED: {len(differences)} rollup row(s) differ from what they sum")
        raise SystemExit(1)
    click.echo(
        f"OK: every rollup equals its recomputation ({len(rollups.ROLLUPS)} tables), "
        f"every folded month its day rows ({len(rollups.FOLDED)} tables)"
    )


@reports_group.command("rebuild")
def reports_rebuild() -> None:
    """Fill every rollup again from the raw rows and fold every ended month again (after
    `check` found a difference)."""
    from api.settings import Settings
    from exchange.reports import rollups

    _run(_on_connection(Settings(), rollups.rebuild))
    click.echo("rebuilt every rollup from the raw rows")


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def backup(path: Path) -> None:
    """Copy the SQLite database to PATH, consistent while the service runs.

    On PostgreSQL it prints how to use pg_dump instead. Keep the data directory's keys/ and
    jwt_secret beside the copy: the database alone does not hold them.
    """
    from api import db
    from api.settings import Settings

    settings = Settings()
    if not settings.is_sqlite:
        from sqlalchemy import make_url

        url = make_url(settings.database_url).set(drivername="postgresql")
        shown = url.render_as_string(hide_password=True)
        click.echo(
            "The database is PostgreSQL: back it up with pg_dump, which takes a consistent\n"
            "snapshot while the service runs, e.g.\n\n"
            f"  pg_dump --format=custom --file {path} '{shown}'\n\n"
            "and restore into a new, empty database with\n\n"
            f"  pg_restore --no-owner --dbname '<new database url>' {path}\n"
        )
        raise SystemExit(1)
    import sqlite3

    try:
        db.backup_sqlite(settings.database_url, path)
    except (FileExistsError, RuntimeError, sqlite3.Error) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"backed up {db.sqlite_path(settings.database_url)} to {path}")
    click.echo(f"also keep {settings.data_dir / 'keys'} and {settings.data_dir / 'jwt_secret'}")


@main.group()
def keys() -> None:
    """Ed25519 signing keys of pickup tokens and tree heads."""


@keys.command("rotate")
def rotate_keys() -> None:
    """Sign with a new key from now on; old keys stay published, so what they signed verifies.

    Running instances load the keys when they start: restart them after a rotation.
    """
    from api.settings import Settings

    settings = Settings()
    settings.ensure_data_dir()
    key = settings.keyring.rotate()
    click.echo(f"active signing key is now {key.kid}")
