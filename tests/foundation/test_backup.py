"""`exchange backup`: a consistent copy of a SQLite database taken while it is being written,
which verifies and serves; on PostgreSQL, directions for pg_dump."""

import asyncio
import shutil
from pathlib import Path

import httpx
from click.testing import CliRunner

from api.cli import main
from tests.foundation.serving import (
    CLIENT_TIMEOUT,
    Load,
    Server,
    assert_every_ledger_verifies,
    populate,
)


async def test_a_backup_taken_under_writes_verifies_and_serves(
    tmp_path: Path, sqlite_template: Path
) -> None:
    (tmp_path / "data").mkdir()
    shutil.copy(sqlite_template, tmp_path / "data" / "exchange.db")
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'exchange.db'}"
    server = Server(tmp_path / "data", url)
    copy_dir = tmp_path / "restored"
    copy_dir.mkdir()
    backup = copy_dir / "exchange.db"
    async with httpx.AsyncClient(base_url="http://unused", timeout=CLIENT_TIMEOUT) as client:
        try:
            await server.start()
            client.base_url = httpx.URL(server.url)
            departments = await populate(url, client)
            load = Load(client, departments)
            running = load.start()
            await load.until("acknowledged", 20)
            while not all(load.acknowledged_in(d) for d in departments):
                await load.until("acknowledged", 1)  # every log has entries to verify
            env = {"EXCHANGE_DATABASE_URL": url, "EXCHANGE_DATA_DIR": str(tmp_path / "data")}
            result = await asyncio.to_thread(
                CliRunner().invoke, main, ["backup", str(backup)], env=env
            )
            await load.until("acknowledged", 1)  # the writes went on during the backup
            load.stopped.set()
            await running
        finally:
            await server.stop()
        assert result.exit_code == 0, result.output
        assert f"to {backup}" in result.output

        # Restore: the copy beside the keys of the data directory it came from.
        shutil.copytree(tmp_path / "data" / "keys", copy_dir / "keys")
        restored = Server(copy_dir, f"sqlite+aiosqlite:///{backup}")
        try:
            await restored.start()  # waits for /health to answer 200
            client.base_url = httpx.URL(restored.url)
            await assert_every_ledger_verifies(client, departments, tmp_path)
        finally:
            await restored.stop()


def test_backup_refuses_to_overwrite_a_file(tmp_path: Path, sqlite_template: Path) -> None:
    target = tmp_path / "exists.db"
    target.write_bytes(b"keep me")
    env = {"EXCHANGE_DATABASE_URL": f"sqlite+aiosqlite:///{sqlite_template}"}
    result = CliRunner().invoke(main, ["backup", str(target)], env=env)
    assert result.exit_code != 0
    assert "exists" in result.output
    assert target.read_bytes() == b"keep me"


def test_backup_on_postgresql_explains_pg_dump_without_showing_the_password(
    tmp_path: Path,
) -> None:
    env = {
        "EXCHANGE_DATABASE_URL": "postgresql+asyncpg://exchange:s3cret@db.internal:5432/exchange",
        "EXCHANGE_DATA_DIR": str(tmp_path),
    }
    result = CliRunner().invoke(main, ["backup", "/backups/exchange.dump"], env=env)
    assert result.exit_code == 1
    assert (
        "pg_dump --format=custom --file /backups/exchange.dump "
        "'postgresql://exchange:***@db.internal:5432/exchange'" in result.output
    )
    assert "pg_restore" in result.output
    assert "s3cret" not in result.output
    assert not (tmp_path / "exchange.dump").exists()
