"""Cosignatures through the API: a registered witness's cosignature of a kept head is stored
and served with the head; anything else is refused with the reason."""

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from click.testing import CliRunner
from litestar.testing import TestClient
from sqlalchemy import func, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db
from api.cli import main as cli
from api.db import transaction
from api.settings import Settings
from api.sweep import integrate_once
from api.witness import Poll, State, Witness
from catalog.departments import register_department
from ledger import transfer
from ledger.models import LedgerCosignature
from ledger.signing import SigningKey, raw_public
from ledger.treehead import TreeHead
from ledger.witness import cosign, register_witness
from tests.conftest import World, _admin, _department, app_for, copy_database
from tests.exchange.helpers import Client

FIELDS = ("tree_size", "root_hash", "key_id", "timestamp", "signature")


@pytest.fixture
async def head(
    client: Client, world: World, session_factory: async_sessionmaker[AsyncSession]
) -> dict[str, Any]:
    """Department A's log of two entries and its signed head."""
    await append(session_factory, world.dept_a, "w1", "w2")
    response = await client.get(
        f"/api/departments/{world.dept_a}/ledger/tree-head", headers=world.headers["emp-a"]
    )
    assert response.status_code == 200, response.text
    return response.json()


async def append(
    session_factory: async_sessionmaker[AsyncSession], ledger_id: str, *keys: str
) -> None:
    """An entry of 10 points in the log of `ledger_id` for each idempotency key, in one
    transaction."""
    async with transaction(session_factory) as s:
        for key in keys:
            await transfer(
                s,
                ledger_id=ledger_id,
                debit="issuance",
                credit="user:x",
                amount=10,
                idempotency_key=key,
                actor="test",
                open_with=(0, 1),
            )


async def registered(session_factory: async_sessionmaker[AsyncSession], name: str) -> SigningKey:
    key = SigningKey.generate()
    async with transaction(session_factory) as s:
        assert await register_witness(s, name, raw_public(key.public_key)) == key.kid
    return key


def body(key: SigningKey, head: dict[str, Any], **change: Any) -> dict[str, Any]:
    signed = cosign(key, TreeHead.from_json(head)).to_json()
    return {**{k: signed[k] for k in FIELDS}, **change}


async def test_a_witness_cosignature_is_kept_and_served_with_the_head(
    client: Client,
    world: World,
    head: dict[str, Any],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    key = await registered(session_factory, "观察员甲")
    path = f"/api/departments/{world.dept_a}/ledger/tree-head/cosignatures"
    for _ in range(2):  # sending it again changes nothing
        response = await client.post(path, json=body(key, head))
        assert response.status_code == 201, response.text
        assert response.json()["witness"] == "观察员甲"
    served = await client.get(
        f"/api/departments/{world.dept_a}/ledger/tree-head", headers=world.headers["audit-a"]
    )
    assert [c["witness"] for c in served.json()["cosignatures"]] == ["观察员甲"]
    heads = (await client.get("/api/witness/heads")).json()  # anyone, signed in or not
    mine = next(h for h in heads["items"] if h["ledger_id"] == world.dept_a)
    assert mine["tree_size"] == head["tree_size"] and mine["cosignatures"][0]["key_id"] == key.kid
    proof = await client.get(
        f"/api/witness/heads/{world.dept_a}/consistency", params={"first": 1, "second": 2}
    )
    assert proof.status_code == 200 and len(proof.json()["consistency_path"]) == 1


@pytest.mark.parametrize(
    "statement",
    ["UPDATE ledger_cosignatures SET signature = signature", "DELETE FROM ledger_cosignatures"],
)
async def test_the_database_refuses_to_change_or_remove_a_cosignature(
    client: Client,
    world: World,
    head: dict[str, Any],
    session_factory: async_sessionmaker[AsyncSession],
    statement: str,
) -> None:
    key = await registered(session_factory, "观察员甲")
    path = f"/api/departments/{world.dept_a}/ledger/tree-head/cosignatures"
    assert (await client.post(path, json=body(key, head))).status_code == 201
    with pytest.raises(DBAPIError, match="append-only"):
        async with transaction(session_factory) as s:
            await (await s.connection()).execute(text(statement))
    async with session_factory() as s:
        kept = await (await s.connection()).execute(
            text("SELECT count(*) FROM ledger_cosignatures")
        )
        assert kept.scalar() == 1


async def test_a_cosignature_that_proves_nothing_is_refused_with_the_reason(
    client: Client,
    world: World,
    head: dict[str, Any],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    key = await registered(session_factory, "observer")
    stranger = SigningKey.generate()
    path = f"/api/departments/{world.dept_a}/ledger/tree-head/cosignatures"
    other_root = "ab" * 32
    cases = [
        (body(stranger, head), 403, "ledger.unknown_witness"),
        (body(key, head, signature=body(key, {**head, "tree_size": 1})["signature"]), 403,
         "ledger.cosignature_invalid"),
        (body(key, {**head, "root_hash": other_root}), 409, "ledger.head_mismatch"),
        (body(key, {**head, "tree_size": 5}), 422, "ledger.tree_size_out_of_range"),
        (body(key, head, timestamp="1900-01-01T00:00:00Z"), 422, "ledger.invalid_request"),
        (body(key, head, root_hash="zz"), 400, None),
    ]  # fmt: skip
    for sent, status, code in cases:
        response = await client.post(path, json=sent)
        assert response.status_code == status, (sent, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        if code:
            assert response.json()["code"] == code
    served = await client.get(
        f"/api/departments/{world.dept_a}/ledger/tree-head", headers=world.headers["audit-a"]
    )
    assert served.json()["cosignatures"] == []
    # Another department's head is not this log's.
    elsewhere = f"/api/departments/{world.dept_b}/ledger/tree-head/cosignatures"
    assert (await client.post(elsewhere, json=body(key, head))).status_code == 403


async def test_the_witness_migration_downgrades_and_upgrades_again(
    database_url: str, engine: AsyncEngine
) -> None:
    config = db.alembic_config(database_url)
    await asyncio.to_thread(command.downgrade, config, "0012")
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
    assert "ledger_witnesses" not in tables and "ledger_cosignatures" not in tables
    await engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
    assert {"ledger_witnesses", "ledger_cosignatures"} <= set(tables)


def test_a_witness_makes_its_key_and_the_operator_registers_it(
    database_url: str, tmp_path: Path
) -> None:
    env = {"EXCHANGE_DATABASE_URL": database_url, "EXCHANGE_DATA_DIR": str(tmp_path / "data")}
    key_path = tmp_path / "witness" / "key.pem"
    made = CliRunner().invoke(cli, ["witness", "key", "--key", str(key_path)])
    assert made.exit_code == 0, made.output
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"
    kid, public = (line.split()[-1] for line in made.output.splitlines())
    again = CliRunner().invoke(cli, ["witness", "key", "--key", str(key_path)])
    assert again.output == made.output  # the same key, kept
    register = ["witness", "register", "观察员"]
    for _ in range(2):  # registering the same witness again changes nothing
        done = CliRunner().invoke(cli, [*register, public], env=env)
        assert done.exit_code == 0 and kid in done.output, done.output
    other = raw_public(SigningKey.generate().public_key)
    taken = CliRunner().invoke(cli, [*register, base64.urlsafe_b64encode(other).decode()], env=env)
    assert taken.exit_code == 1 and "registered already" in taken.output
    bad = CliRunner().invoke(cli, [*register, "not-a-key"], env=env)
    assert bad.exit_code == 2 and "not a base64url Ed25519 public key" in bad.output


async def test_the_witness_refuses_a_fork_that_grew_past_the_head_it_cosigned(
    settings: Settings,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    """A copy of the log taken at three entries gets another fourth entry and a fifth: a head
    larger than the fourth the witness co-signed, which no consistency proof can extend from
    it. The witness refuses it, keeps both heads, and co-signs nothing there (the same size
    with another root is tests/browser/test_witness.py's fork)."""
    key = await registered(session_factory, "观察员")
    async with transaction(session_factory) as s:
        department = await register_department(s, _department("见证部门"), actor_id=None)
    ledger_id = department.id

    async def signed(factory: async_sessionmaker[AsyncSession], *keys: str) -> None:
        await append(factory, ledger_id, *keys)
        await integrate_once(factory, settings.keyring)

    await signed(session_factory, "e1", "e2", "e3")
    await engine.dispose()
    fork_url = await asyncio.to_thread(copy_database, settings.database_url)
    fork_engine = db.create_engine(fork_url)
    try:
        await signed(session_factory, "e4")
        await signed(db.create_session_factory(fork_engine), "forged-4", "forged-5")
        await fork_engine.dispose()
        state = State.load(tmp_path / "witness.json")

        def poll(database_url: str) -> Poll:
            serving = settings.model_copy(update={"database_url": database_url})
            with TestClient(app_for(serving, spare=True)) as http:
                return Witness(http, key, state).poll()

        assert (await asyncio.to_thread(poll, settings.database_url)).cosigned == [ledger_id]
        refused = await asyncio.to_thread(poll, fork_url)
        assert refused.refused == [ledger_id] and refused.cosigned == []
        fork = State.load(tmp_path / "witness.json").forks[ledger_id]  # as saved
        assert fork["reason"] == "the new head does not extend the one co-signed before"
        assert (fork["cosigned"]["tree_size"], fork["shown"]["tree_size"]) == (4, 5)
        async with db.create_session_factory(fork_engine)() as s:
            kept = (await s.exec(select(func.count()).select_from(LedgerCosignature))).one()
        assert kept == 0
    finally:
        await fork_engine.dispose()
        if not fork_url.startswith("sqlite"):
            await asyncio.to_thread(_admin, f"DROP DATABASE IF EXISTS {fork_url.rsplit('/', 1)[1]}")
