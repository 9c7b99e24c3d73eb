"""Ledger benchmark: transfer throughput beside a raw asyncpg baseline, Merkle root and
export verification beside raw hashlib, and inclusion-proof latency on a 1,000,000-entry log.

    uv run python bench/ledger.py                       # PostgreSQL (see --postgres) and SQLite
    EXCHANGE_BENCH_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/postgres \
        uv run python bench/ledger.py --seconds 5

It creates (and drops) a scratch PostgreSQL database and a temporary SQLite file; it never
touches an existing database. Numbers are printed as tables; see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import os
import platform
import random
import resource
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api import db
from bench.tables import out, table
from ledger import (
    AccountFlags,
    inclusion_proof,
    merkle,
    open_account,
    root_hash,
    transfer,
)
from ledger.encoding import Entry, encode_entry
from ledger.proofs import InclusionProof
from ledger.receipts import Receipt
from ledger.signing import KeyRing
from ledger.treehead import sign_tree_head
from ledger.verify import verify_export

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
CONCURRENCY = (1, 8, 32, 64)
DEPTS = 100
USERS_PER_DEPT = 20


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# --- load generator ------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """Latencies (s) of the operations one measurement completed, and how long it took."""

    latencies: list[float]
    elapsed: float


def summary(runs: list[Run]) -> tuple[float, float, float]:
    """(ops/s, p50 ms, p99 ms) over several runs of the same measurement."""
    lat = [x for r in runs for x in r.latencies]
    return len(lat) / sum(r.elapsed for r in runs), pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3


async def drive(
    concurrency: int, seconds: float, op: Callable[[random.Random], Awaitable[None]]
) -> Run:
    """Run ``op`` in ``concurrency`` loops for ``seconds``."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def loop(i: int) -> None:
        rng = random.Random(i)
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await op(rng)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(loop(i) for i in range(concurrency)))
    return Run(latencies, time.perf_counter() - start)


def pick(spread: str, rng: random.Random) -> tuple[str, str]:
    dept = f"dept-{rng.randrange(DEPTS)}" if spread == "across" else "dept-0"
    return dept, f"user:{rng.randrange(USERS_PER_DEPT)}"


async def setup_ledgers(url: str) -> None:
    engine = db.create_engine(url)
    factory = db.create_session_factory(engine)
    async with db.transaction(factory) as s:
        for d in range(DEPTS):
            await open_account(s, f"dept-{d}", "issuance")
            for u in range(USERS_PER_DEPT):
                await open_account(
                    s, f"dept-{d}", f"user:{u}", AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
                )
    await engine.dispose()


async def ledger_throughput(url: str, concurrency: int, spread: str, seconds: float) -> Run:
    engine = (
        db.create_engine(url, pool_size=concurrency, max_overflow=0)
        if url.startswith("postgres")
        else db.create_engine(url)
    )
    factory = db.create_session_factory(engine)

    async def op(rng: random.Random) -> None:
        dept, user = pick(spread, rng)
        async with factory() as s, s.begin():
            await transfer(
                s,
                ledger_id=dept,
                debit="issuance",
                credit=user,
                amount=rng.randrange(1, 100),
                idempotency_key=uuid.uuid4().hex,
                actor="bench",
                reference="bench",
            )

    await drive(concurrency, min(1.0, seconds), op)  # warm the pool and statement caches
    result = await drive(concurrency, seconds, op)
    await engine.dispose()
    return result


RAW_SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_raw_accounts (
    dept text, account text, balance bigint NOT NULL, PRIMARY KEY (dept, account));
CREATE TABLE IF NOT EXISTS bench_raw_log (
    dept text, id bigserial, account text, amount bigint, ref text, PRIMARY KEY (dept, id));
"""


async def raw_throughput(dsn: str, concurrency: int, spread: str, seconds: float) -> Run:
    """The floor any ledger pays: one asyncpg transaction with one INSERT and one UPDATE."""
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)

    async def op(rng: random.Random) -> None:
        dept, user = pick(spread, rng)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO bench_raw_log (dept, account, amount, ref) VALUES ($1, $2, $3, $4)",
                dept,
                user,
                1,
                "bench",
            )
            await conn.execute(
                "UPDATE bench_raw_accounts SET balance = balance + $1"
                " WHERE dept = $2 AND account = $3",
                1,
                dept,
                user,
            )

    await drive(concurrency, min(1.0, seconds), op)
    result = await drive(concurrency, seconds, op)
    await pool.close()
    return result


async def function_throughput(
    dsn: str, concurrency: int, spread: str, seconds: float
) -> Run | None:
    """Diagnostic: the same transfer as ``ledger_throughput``, by a call of the PostgreSQL
    function ``ledger_append`` over raw asyncpg, without SQLAlchemy. The gap between the two
    is client CPU spent in SQLAlchemy (session, greenlets, pool pre-ping), not ledger work."""
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    if await pool.fetchval("SELECT to_regproc('ledger_append')") is None:
        await pool.close()
        return None  # a checkout from before migration 0007

    async def op(rng: random.Random) -> None:
        dept, user = pick(spread, rng)
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT seq FROM ledger_append($1, $2, 'bench', 'direct', 'issuance', $3, $4,"
                " 'bench', NULL, NULL, $5, NULL, NULL)",
                dept,
                uuid.uuid4().hex,
                user,
                rng.randrange(1, 100),
                time.time_ns() // 1000,
            )
            assert row is not None

    await drive(concurrency, min(1.0, seconds), op)
    result = await drive(concurrency, seconds, op)
    await pool.close()
    return result


async def setup_raw(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    await conn.execute(RAW_SCHEMA)
    await conn.executemany(
        "INSERT INTO bench_raw_accounts VALUES ($1, $2, 0)",
        [(f"dept-{d}", f"user:{u}") for d in range(DEPTS) for u in range(USERS_PER_DEPT)],
    )
    await conn.close()


# --- synthetic log (for hashing and the million-entry proof table) ------------------------


def synthetic_entries(
    ledger_id: str, n: int, t0_us: int = 1_780_000_000_000_000
) -> Iterator[Entry]:
    """A valid log of direct credits issuance -> 1,000 users, balances as the ledger keeps them."""
    users: dict[int, int] = {}
    issued = 0
    for seq in range(1, n + 1):
        u = (seq * 7919) % 1000
        amount = 1 + seq % 97
        issued += amount
        users[u] = users.get(u, 0) + amount
        yield Entry(
            ledger_id=ledger_id,
            seq=seq,
            kind="direct",
            time_us=t0_us + seq * 1000,
            debit_account="issuance",
            credit_account=f"user:{u}",
            amount=amount,
            ref_seq=None,
            expires_at_us=None,
            reference=f"dropoff:{seq}",
            actor="bench",
            idempotency_key=f"k{seq}",
            debit_flags=0,
            credit_flags=1,
            dr_debits_pending=0,
            dr_debits_posted=issued,
            dr_credits_pending=0,
            dr_credits_posted=0,
            cr_debits_pending=0,
            cr_debits_posted=0,
            cr_credits_pending=0,
            cr_credits_posted=users[u],
        )


def hashing(n: int) -> list[list[Any]]:
    lines = [encode_entry(e) for e in synthetic_entries("dept-h", n)]
    total = sum(len(x) for x in lines)
    ring = KeyRing.ephemeral()
    root = merkle.root_of_leaves(merkle.leaf_hash(x) for x in lines)
    head = sign_tree_head(ring.active, "dept-h", n, root, 1_780_000_000_000_000)
    export = [x + b"\n" for x in lines]

    sha = hashlib.sha256
    findings: list[Any] = []
    runs: dict[str, Callable[[], object]] = {
        "raw": lambda: [sha(x).digest() for x in lines],
        "tree": lambda: merkle.root_of_leaves(merkle.leaf_hash(x) for x in lines),
        "verify": lambda: findings.extend(verify_export(export, head, ring)),
    }
    # Interleaved rounds, best of each: on a shared machine the load changes from one second
    # to the next, and a ratio of two measurements taken minutes apart would mostly show that.
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(5):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    assert not findings, findings[:3]
    raw, tree, ver = (n / best[k] for k in ("raw", "tree", "verify"))
    return [
        ["raw hashlib.sha256 over each entry's bytes", f"{raw:,.0f}", "1.00"],
        ["Merkle root (leaves + nodes)", f"{tree:,.0f}", f"{tree / raw:.2f}"],
        ["export verification (parse, replay, root, signature)", f"{ver:,.0f}", f"{ver / raw:.2f}"],
        [f"(n = {n:,} entries, {total / n:.0f} bytes each)", "", ""],
    ]


# --- offline verification of a department-shaped export, end to end -----------------------

HOUR_US = 3_600_000_000


def department_entries(ledger_id: str, n: int, seed: int = 16) -> Iterator[Entry]:
    """A valid log shaped like a department's, with every entry kind: drop-offs credited at
    once or pending a steward (then posted, partly posted or voided), orders held (then
    posted at pickup or voided), now and then a reversal; 2,000 employees; the counters
    after every entry as the ledger keeps them."""
    rng = random.Random(seed)
    users = [f"user:{i}" for i in range(2000)]
    flags = {"issuance": 0, "redemption": 0} | dict.fromkeys(users, 1)
    counters = {code: [0, 0, 0, 0] for code in flags}
    open_: list[tuple[int, str, str, int]] = []  # pending transfers: seq, dr, cr, amount
    reversible: list[tuple[int, str, str, int]] = []
    t0 = 1_780_000_000_000_000
    for seq in range(1, n + 1):
        t = t0 + seq * 1000
        ref = expires = None
        r = rng.random()
        if (
            open_ and r < 0.3
        ):  # a steward confirms or rejects, or an order is picked up or cancelled
            i = rng.randrange(len(open_))
            open_[i], open_[-1] = open_[-1], open_[i]
            ref, dr, cr, held = open_.pop()
            kind = "post" if rng.random() < 0.8 else "void"
            amount = held if kind == "void" or rng.random() < 0.8 else rng.randint(1, held)
            counters[dr][0] -= held
            counters[cr][2] -= held
            if kind == "post":
                counters[dr][1] += amount
                counters[cr][3] += amount
                reversible.append((seq, dr, cr, amount))
        else:
            user = rng.choice(users)
            c = counters[user]
            available = c[3] - c[1] - c[0]
            if reversible and r < 0.32:
                ref, cr, dr, amount = reversible.pop()  # the mirror image of a posted transfer
                d = counters[dr]
                if flags[dr] and d[0] + d[1] + amount > d[3]:
                    reversible.append((ref, cr, dr, amount))
                    ref, kind, dr, cr, amount = None, "direct", "issuance", user, 10
                else:
                    kind = "reversal"
            elif r < 0.7 or available < 1:  # a drop-off
                kind = "pending" if rng.random() < 0.5 else "direct"
                dr, cr, amount = "issuance", user, rng.randint(1, 200)
            else:  # an order holds points until pickup
                kind, dr, cr, amount = "pending", user, "redemption", rng.randint(1, available)
                expires = t + 168 * HOUR_US
            if kind == "pending":
                counters[dr][0] += amount
                counters[cr][2] += amount
                open_.append((seq, dr, cr, amount))
            else:
                counters[dr][1] += amount
                counters[cr][3] += amount
                if kind == "direct":
                    reversible.append((seq, dr, cr, amount))
        d, c = counters[dr], counters[cr]
        yield Entry(
            ledger_id=ledger_id,
            seq=seq,
            kind=kind,
            time_us=t,
            debit_account=dr,
            credit_account=cr,
            amount=amount,
            ref_seq=ref,
            expires_at_us=expires,
            reference=f"dropoff:{seq}" if dr == "issuance" else f"order:{seq}",
            actor="bench",
            idempotency_key=f"k{seq}",
            debit_flags=flags[dr],
            credit_flags=flags[cr],
            dr_debits_pending=d[0],
            dr_debits_posted=d[1],
            dr_credits_pending=d[2],
            dr_credits_posted=d[3],
            cr_debits_pending=c[0],
            cr_debits_posted=c[1],
            cr_credits_pending=c[2],
            cr_credits_posted=c[3],
        )


def write_export(folder: Path, n: int) -> tuple[Path, Path, Path]:
    """A department's n-entry export, its signed tree head and the JWKS, as an auditor
    downloads them; and the receipt of its middle entry (receipt.json), as an employee
    downloads it."""
    ring = KeyRing.ephemeral()
    leaves: list[bytes] = []
    export = folder / "export.jsonl"
    middle = n // 2 or 1
    with export.open("wb") as f:
        for e in department_entries("dept-v", n):
            line = encode_entry(e)
            leaves.append(merkle.leaf_hash(line))
            f.write(line + b"\n")
            if e.seq == middle:
                entry, account = e, e.credit_account
    head = sign_tree_head(ring.active, "dept-v", n, merkle.root_of_leaves(leaves), 1 << 50)
    path = merkle.proof_in_memory(merkle.inclusion_ranges(middle - 1, n), leaves)
    proof = InclusionProof("dept-v", middle, n, leaves[middle - 1], path)
    receipt = Receipt(entry, head, proof).to_json(account, {})
    (folder / "receipt.json").write_text(json.dumps(receipt))
    (folder / "head.json").write_text(json.dumps(head.to_json()))
    (folder / "keys.json").write_text(json.dumps(ring.jwks()))
    return export, folder / "head.json", folder / "keys.json"


def verification(n: int, rounds: int) -> list[list[Any]]:
    """`exchange ledger verify` of an n-entry export as a command, start to exit, in one and
    in two processes, beside raw hashlib.sha256 over the same lines; interleaved rounds,
    best of each."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        export, head, keys = write_export(Path(tmp), n)
        receipt = export.parent / "receipt.json"
        written = time.perf_counter() - t0
        lines = export.read_bytes().split(b"\n")[:-1]
        command = [str(Path(sys.executable).parent / "exchange"), "ledger", "verify", str(export)]
        command += ["--tree-head", str(head), "--keys", str(keys), "--processes"]
        sha = hashlib.sha256

        def cli(processes: int) -> None:
            done = subprocess.run([*command, str(processes)], capture_output=True, check=False)
            assert done.returncode == 0 and done.stdout.startswith(b"OK"), done.stdout[-500:]

        runs: dict[str, Callable[[], object]] = {
            "raw": lambda: [sha(x).digest() for x in lines],
            "start": lambda: subprocess.run(
                [command[0], "--help"], capture_output=True, check=True
            ),
            "receipt": lambda: subprocess.run(
                [command[0], "receipt", "verify", str(receipt), "--jwks", str(keys)],
                capture_output=True,
                check=True,
            ),
            "bare": lambda: subprocess.run([sys.executable, "-c", "pass"], check=True),
            "cli 1": lambda: cli(1),
            "cli 2": lambda: cli(2),
        }
        # Wall time is what an auditor waits; CPU time (user + system of the command's
        # processes, or of this one for raw hashing) moves less with a shared machine's load.
        wall = dict.fromkeys(runs, float("inf"))
        cpu = dict.fromkeys(runs, float("inf"))
        for _ in range(rounds):
            for name, fn in runs.items():
                t0, c0 = time.perf_counter(), cpu_seconds()
                fn()
                wall[name] = min(wall[name], time.perf_counter() - t0)
                cpu[name] = min(cpu[name], cpu_seconds() - c0)
        size = export.stat().st_size

    def row(what: str, name: str) -> list[Any]:
        ratios = (f"{wall['raw'] / wall[name]:.2f}", f"{cpu['raw'] / cpu[name]:.2f}")
        if name in ("start", "receipt", "bare"):
            ratios = ("", "")
        return [what, f"{wall[name]:.2f}", ratios[0], f"{cpu[name]:.2f}", ratios[1]]

    return [
        row("raw hashlib.sha256 over each entry's bytes", "raw"),
        row("`exchange ledger verify`, 1 process", "cli 1"),
        row("`exchange ledger verify`, 2 processes", "cli 2"),
        row("(of which starting the command: `exchange --help`)", "start"),
        row("`exchange receipt verify` of the middle entry's receipt", "receipt"),
        row("`python -c pass` (the interpreter alone)", "bare"),
        [f"(n = {n:,} entries, {size / n:.0f} bytes each; written in {written:.0f} s)"] + [""] * 4,
    ]


def cpu_seconds() -> float:
    """User + system time of this process and of its children that have ended."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


async def build_big_log_pg(dsn: str, ledger_id: str, n: int) -> float:
    """Bulk-load a valid n-entry log with COPY: entries, every stored node, and the head."""
    t0 = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    cols = [f.name for f in dataclasses.fields(Entry)]
    frontier: list[bytes] = []
    batch_e: list[tuple] = []
    batch_n: list[tuple] = []
    size = 0
    last_time = 0

    async def flush() -> None:
        await conn.copy_records_to_table("ledger_entries", records=batch_e, columns=cols)
        await conn.copy_records_to_table(
            "ledger_merkle_nodes", records=batch_n, columns=["ledger_id", "level", "idx", "hash"]
        )
        batch_e.clear()
        batch_n.clear()

    for e in synthetic_entries(ledger_id, n):
        frontier, done = merkle.append_leaf(frontier, size, merkle.leaf_hash(encode_entry(e)))
        size += 1
        last_time = e.time_us
        batch_e.append(tuple(getattr(e, c) for c in cols))
        batch_n.extend((ledger_id, lv, ix, h) for lv, ix, h in done)
        if len(batch_e) >= 50_000:
            await flush()
    await flush()
    await conn.execute(
        "INSERT INTO ledger_heads (ledger_id, size, last_time_us) VALUES ($1, $2, $3)",
        ledger_id,
        size,
        last_time,
    )
    await conn.execute(
        "INSERT INTO ledger_trees (ledger_id, size, frontier) VALUES ($1, $2, $3)",
        ledger_id,
        size,
        b"".join(frontier),
    )
    await conn.execute("ANALYZE ledger_entries; ANALYZE ledger_merkle_nodes")
    await conn.close()
    return time.perf_counter() - t0


def build_big_log_sqlite(path: str, ledger_id: str, n: int) -> float:
    t0 = time.perf_counter()
    con = sqlite3.connect(path)
    cols = [f.name for f in dataclasses.fields(Entry)]
    frontier: list[bytes] = []
    ents: list[tuple] = []
    nodes: list[tuple] = []
    size = last_time = 0
    ins_e = f"INSERT INTO ledger_entries ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    for e in synthetic_entries(ledger_id, n):
        frontier, done = merkle.append_leaf(frontier, size, merkle.leaf_hash(encode_entry(e)))
        size += 1
        last_time = e.time_us
        ents.append(tuple(getattr(e, c) for c in cols))
        nodes.extend((ledger_id, lv, ix, h) for lv, ix, h in done)
        if len(ents) >= 50_000:
            con.executemany(ins_e, ents)
            con.executemany("INSERT INTO ledger_merkle_nodes VALUES (?, ?, ?, ?)", nodes)
            ents.clear()
            nodes.clear()
    con.executemany(ins_e, ents)
    con.executemany("INSERT INTO ledger_merkle_nodes VALUES (?, ?, ?, ?)", nodes)
    con.execute(
        "INSERT INTO ledger_heads (ledger_id, size, last_time_us) VALUES (?, ?, ?)",
        (ledger_id, size, last_time),
    )
    con.execute(
        "INSERT INTO ledger_trees (ledger_id, size, frontier) VALUES (?, ?, ?)",
        (ledger_id, size, b"".join(frontier)),
    )
    con.commit()
    con.close()
    return time.perf_counter() - t0


async def proof_latency(
    url: str, ledger_id: str, n: int, samples: int, against_head: bool
) -> tuple[float, float, float]:
    """Latency of one inclusion proof in its own session and transaction, as the API serves
    it: ``against_head`` passes the tree size of a known head (one query), otherwise the
    proof is for the current size (the head row, then the nodes)."""
    engine = db.create_engine(url)
    factory = db.create_session_factory(engine)
    rng = random.Random(1)
    lat: list[float] = []
    async with factory() as s:
        _, root = await root_hash(s, ledger_id)
    for i in range(samples + 50):
        seq = rng.randrange(1, n + 1)
        t0 = time.perf_counter()
        async with factory() as s:
            proof = await inclusion_proof(s, ledger_id, seq, n if against_head else None)
        if i >= 50:  # the first ones warm the pool
            lat.append(time.perf_counter() - t0)
        if i % 100 == 0:
            assert merkle.verify_inclusion(seq - 1, n, proof.leaf_hash, proof.path, root)
    await engine.dispose()
    return pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3, statistics.mean(lat) * 1e3


async def proof_table(url: str, name: str, n: int, samples: int, built: float) -> None:
    rows = []
    for against_head in (True, False):
        p50, p99, mean = await proof_latency(url, "dept-big", n, samples, against_head)
        what = "?seq=&tree_size= (against a head)" if against_head else "?seq= (current size)"
        rows.append([what, samples, f"{p50:.2f}", f"{p99:.2f}", f"{mean:.2f}"])
    table(
        f"Inclusion proof on a {n:,}-entry log ({name}; log bulk-loaded in {built:.0f} s)",
        ["request", "samples", "p50 ms", "p99 ms", "mean ms"],
        rows,
    )


# --- main ----------------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--postgres", default=os.environ.get("EXCHANGE_BENCH_POSTGRES_URL", DEFAULT_PG))
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--no-throughput", action="store_true", help="only hashing and proofs")
    ap.add_argument("--seconds", type=float, default=4.0, help="per throughput measurement")
    ap.add_argument("--rounds", type=int, default=3, help="alternating ledger/raw rounds per point")
    ap.add_argument(
        "--writers",
        default=",".join(map(str, CONCURRENCY)),
        help="comma-separated numbers of concurrent writers",
    )
    ap.add_argument("--hash-entries", type=int, default=200_000)
    ap.add_argument(
        "--verify-entries",
        type=int,
        default=1_000_000,
        help="entries in the export `exchange ledger verify` checks (0 skips)",
    )
    ap.add_argument("--verify-rounds", type=int, default=3)
    ap.add_argument("--proof-log", type=int, default=1_000_000, help="entries in the proof log")
    ap.add_argument("--proof-samples", type=int, default=2000)
    args = ap.parse_args()
    writers = [int(w) for w in args.writers.split(",")]

    out(f"Machine: {machine()}")
    out(f"Load average before the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    out("\n## Hashing (entries per second, best of 5 interleaved rounds)")
    table(
        "Merkle and verification vs raw hashlib",
        ["what", "entries/s", "ratio"],
        hashing(args.hash_entries),
    )
    if args.verify_entries:
        table(
            "Offline verification of a department's export, the command from start to exit, "
            f"best of {args.verify_rounds} interleaved rounds (ratio: raw hashing's time / this)",
            ["what", "wall s", "ratio", "CPU s", "CPU ratio"],
            verification(args.verify_entries, args.verify_rounds),
        )

    if not args.no_postgres:
        base = args.postgres
        admin = base.replace("+asyncpg", "")
        name = f"ledger_bench_{secrets.token_hex(4)}"
        c = await asyncpg.connect(admin)
        version = await c.fetchval("SHOW server_version")
        await c.execute(f"CREATE DATABASE {name}")
        await c.close()
        url = f"{base.rsplit('/', 1)[0]}/{name}"
        dsn = url.replace("+asyncpg", "")
        try:
            out(f"\n## PostgreSQL {version} (scratch database {name})")
            await asyncio.to_thread(db.upgrade, url)
            await setup_ledgers(url)
            await setup_raw(dsn)
            rows = []
            for spread in () if args.no_throughput else ("across", "one"):
                for conc in writers:
                    # Ledger and raw alternate, round after round, so that a change in the
                    # shared machine's load hits both sides of the ratio alike.
                    ledger_runs, fn_runs, raw_runs = [], [], []
                    for _ in range(args.rounds):
                        ledger_runs.append(await ledger_throughput(url, conc, spread, args.seconds))
                        raw_runs.append(await raw_throughput(dsn, conc, spread, args.seconds))
                        fn_runs.append(await function_throughput(dsn, conc, spread, args.seconds))
                    lt, l50, l99 = summary(ledger_runs)
                    rt, r50, r99 = summary(raw_runs)
                    fn = [r for r in fn_runs if r is not None]
                    ft = summary(fn)[0] if fn else float("nan")
                    where = f"{DEPTS} depts" if spread == "across" else "1 dept"
                    rows.append(
                        [
                            where,
                            conc,
                            f"{lt:,.0f}",
                            f"{l50:.1f}",
                            f"{l99:.1f}",
                            f"{rt:,.0f}",
                            f"{r50:.1f}",
                            f"{r99:.1f}",
                            f"{lt / rt:.0%}",
                            f"{ft:,.0f}",
                            f"{ft / rt:.0%}",
                        ]
                    )
            if rows:
                table(
                    "Transfers per second: ledger vs raw INSERT+UPDATE (asyncpg), "
                    f"{args.rounds} alternating rounds of {args.seconds:g} s",
                    [
                        "spread",
                        "writers",
                        "ledger tx/s",
                        "p50 ms",
                        "p99 ms",
                        "raw tx/s",
                        "p50 ms",
                        "p99 ms",
                        "ledger/raw",
                        "ledger_append over asyncpg tx/s",
                        "its /raw",
                    ],
                    rows,
                )
            if args.proof_log:
                built = await build_big_log_pg(dsn, "dept-big", args.proof_log)
                await proof_table(url, "PostgreSQL", args.proof_log, args.proof_samples, built)
        finally:
            c = await asyncpg.connect(admin)
            await c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await c.close()

    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            path = f"{tmp}/bench.db"
            url = f"sqlite+aiosqlite:///{path}"
            out(f"\n## SQLite {sqlite3.sqlite_version} (WAL, synchronous=NORMAL, {path})")
            await asyncio.to_thread(db.upgrade, url)
            await setup_ledgers(url)
            rows = []
            for spread in () if args.no_throughput else ("across", "one"):
                for conc in writers:
                    lt, l50, l99 = summary(
                        [await ledger_throughput(url, conc, spread, args.seconds)]
                    )
                    where = f"{DEPTS} depts" if spread == "across" else "1 dept"
                    rows.append([where, conc, f"{lt:,.0f}", f"{l50:.1f}", f"{l99:.1f}"])
            if rows:
                table(
                    "Transfers per second through the ledger (SQLite serialises all writers)",
                    ["spread", "writers", "ledger tx/s", "p50 ms", "p99 ms"],
                    rows,
                )
            if args.proof_log:
                built = await asyncio.to_thread(
                    build_big_log_sqlite, path, "dept-big", args.proof_log
                )
                await proof_table(url, "SQLite", args.proof_log, args.proof_samples, built)


if __name__ == "__main__":
    asyncio.run(main())
