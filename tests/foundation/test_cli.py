"""The `exchange` command line."""

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from sqlmodel import select

from api import cli, db
from api.cli import main
from catalog import lockout, passwords
from catalog.lockout import LockoutPolicy
from catalog.models import User, utcnow


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {"EXCHANGE_DATABASE_URL": database_url, "EXCHANGE_DATA_DIR": str(tmp_path / "data")}


def test_db_upgrade_is_idempotent(env: dict[str, str]) -> None:
    for _ in range(2):
        result = CliRunner().invoke(main, ["db", "upgrade"], env=env)
        assert result.exit_code == 0, result.output
        assert "up to date" in result.output


def test_the_head_read_off_the_file_names_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(db.alembic_config(""))
    assert db.head_revision() == scripts.get_current_head()
    # One line of history, each revision named by its file: what head_revision relies on.
    for script in scripts.walk_revisions():
        assert Path(script.path).name.startswith(f"{script.revision}_"), script.path


def test_users_create_makes_a_platform_admin_and_refuses_a_duplicate(env: dict[str, str]) -> None:
    args = ["users", "create", "root-admin", "--display-name", "Root", "--role", "admin"]
    created = CliRunner().invoke(main, [*args, "--password", "long-enough-1"], env=env)
    assert created.exit_code == 0, created.output
    assert "created user root-admin" in created.output

    again = CliRunner().invoke(main, [*args, "--password", "long-enough-1"], env=env)
    assert again.exit_code != 0
    assert "already taken" in again.output


def test_users_unlock_lifts_a_lockout(env: dict[str, str], database_url: str) -> None:
    args = ["users", "create", "root-admin", "--display-name", "Root", "--role", "admin"]
    assert CliRunner().invoke(main, [*args, "--password", "long-enough-1"], env=env).exit_code == 0

    # Locked out from an address and from a device: unlocking lifts both.
    CLIENTS = ("address:10.0.0.1", "device:0123456789abcdef")
    now = utcnow()

    async def locked(lock: bool) -> bool:
        engine = db.create_engine(database_url)
        try:
            async with db.transaction(db.create_session_factory(engine)) as session:
                found = await session.exec(select(User.id).where(User.username == "root-admin"))
                user_id = found.one()
                for client in CLIENTS if lock else ():
                    await lockout.record_failure(session, user_id, client, LockoutPolicy(1), now)
                return any([await lockout.is_locked(session, user_id, c, now) for c in CLIENTS])
        finally:
            await engine.dispose()

    assert asyncio.run(locked(lock=True))
    result = CliRunner().invoke(main, ["users", "unlock", "root-admin"], env=env)
    assert result.exit_code == 0, result.output
    assert not asyncio.run(locked(lock=False))
    unknown = CliRunner().invoke(main, ["users", "unlock", "nobody-here"], env=env)
    assert unknown.exit_code != 0 and "no user" in unknown.output


def test_users_create_explains_a_bad_role(env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        main,
        [
            "users",
            "create",
            "x-user",
            "--display-name",
            "X",
            "--role",
            "wizard",
            "--password",
            "long-enough-1",
        ],
        env=env,
    )
    assert result.exit_code != 0
    assert "unknown role 'wizard'" in result.output


def test_keys_rotate_signs_with_a_new_key_and_keeps_the_old_one_published(
    env: dict[str, str],
) -> None:
    from api.settings import Settings

    data_dir = Path(env["EXCHANGE_DATA_DIR"])
    before = Settings(data_dir=data_dir).keyring.active.kid
    result = CliRunner().invoke(main, ["keys", "rotate"], env=env)
    assert result.exit_code == 0, result.output
    keyring = Settings(data_dir=data_dir).keyring
    assert keyring.active.kid != before
    assert result.output.strip().endswith(keyring.active.kid)
    assert {key["kid"] for key in keyring.jwks()["keys"]} == {before, keyring.active.kid}


def test_demo_serves_exactly_as_serve_with_one_worker(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same server software and options: only the demo data differs. The server itself is
    recorded rather than started (it would serve until stopped)."""
    served: list[tuple[object, ...]] = []
    monkeypatch.setattr(cli, "run_server", lambda *args: served.append(args))
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(1, 8, 1))
    for args in (["serve", "--workers", "1"], ["demo"]):
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 0, result.output
    (factory, settings, *where), (demo_factory, demo_settings, *demo_where) = served
    assert (
        (factory, *where)
        == (demo_factory, *demo_where)
        == ("api.app:create_app", "127.0.0.1", 8000, 1, "uvicorn")
    )
    assert cli.uvicorn_options(settings) == cli.uvicorn_options(demo_settings)


def test_the_offline_verifiers_start_without_the_service(tmp_path: Path) -> None:
    """`exchange receipt verify` and `exchange ledger verify` run on an employee's or an
    auditor's own machine: they load neither the database layer, the web framework nor the
    event loop, whose imports would be most of a receipt's check (bench/README.md)."""
    receipt, keys, export = tmp_path / "r.json", tmp_path / "k.json", tmp_path / "e.jsonl"
    receipt.write_text("{}")
    keys.write_text('{"keys": []}')
    export.write_bytes(b"")
    script = (
        "import sys\n"
        "from api.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "service = {'sqlalchemy', 'sqlmodel', 'alembic', 'litestar', 'uvicorn', 'pydantic',\n"
        "           'asyncio', 'structlog', 'httpx'}\n"
        "print('loaded:', sorted(service & {name.split('.')[0] for name in sys.modules}))\n"
    )
    for argv in (
        ["receipt", "verify", str(receipt), "--jwks", str(keys)],
        ["ledger", "verify", str(export), "--keys", str(keys)],
    ):
        done = subprocess.run(
            [sys.executable, "-c", script, *argv], capture_output=True, text=True, check=True
        )
        assert done.stdout.splitlines()[-1] == "loaded: []", (argv, done.stdout, done.stderr)
        assert "FAILED" in done.stdout or "OK" in done.stdout, done.stdout
