"""HTTP benchmark: POST /api/dropoffs through the real server (`exchange serve --workers N`)
beside a raw Litestar + asyncpg route doing the same durable work (bench/raw_dropoffs.py),
in the same run, driven by wrk with a Lua script that gives every request its own
Idempotency-Key and each simulated employee their own bearer token.

    apt-get install -y wrk          # the load generator (C, event loop: it does not starve
                                    # a 2-core server the way a Python client would)
    EXCHANGE_BENCH_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/postgres \
        uv run python bench/http.py --seconds 10

It creates (and drops) a scratch PostgreSQL database; it never touches an existing one.
Numbers are printed as a table; see bench/README.md for how to read them.
"""

import sys
from pathlib import Path

# This file is named http.py: its directory must not shadow the standard library's `http`.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from litestar.security.jwt import Token  # noqa: E402

from api import db  # noqa: E402
from bench.tables import out, table  # noqa: E402
from catalog.models import new_id  # noqa: E402
from exchange.points import open_accounts  # noqa: E402

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
SCENARIOS = {"200 over 20 departments": 20, "200 in 1 department": 1}
EMPLOYEES = 200
CONNECTIONS = (32, 128)
WORKERS = (1, 2)
LUA = Path(__file__).resolve().parent / "dropoffs.lua"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- seed data --------------------------------------------------------------------------------


@dataclass
class Crowd:
    """Employees (token, station code, user id) of one measured point."""

    lines: list[tuple[str, str, str]]

    def write(self, path: Path) -> Path:
        path.write_text("".join(f"{t} {s} {u}\n" for t, s, u in self.lines))
        return path


async def seed(
    url: str, secret: str, departments: int, points: int, *, campaign: bool
) -> list[Crowd]:
    """Approved departments with a station each, one open campaign with the cap lifted, and
    `points` crowds of EMPLOYEES fresh employees (so a user's daily sum stays as small as in
    life), their ledger accounts opened as when a member joins."""
    engine = db.create_engine(url)
    factory = db.create_session_factory(engine)
    now = datetime.now(UTC)
    dsn = url.replace("+asyncpg", "")
    conn = await asyncpg.connect(dsn)
    dept_ids, codes = [], []
    try:
        admin = new_id()
        await conn.execute(
            "INSERT INTO users (id, username, display_name, password_hash, is_active, created_at)"
            " VALUES ($1, $1, 'Bench', 'x', true, $2)",
            admin,
            now,
        )
        for _ in range(departments):
            dept, code = new_id(), secrets.token_hex(5)
            dept_ids.append(dept)
            codes.append(code)
            await conn.execute(
                "INSERT INTO departments (id, name, status, village_name, village_county,"
                " village_province, contact_name, contact_phone, pickup_location, created_at,"
                " status_changed_at) VALUES ($1, $2, 'approved', 'v', 'c', 'p', 'n', '1', 'l',"
                " $3, $3)",
                dept,
                f"bench department {dept}",
                now,
            )
            await conn.execute(
                "INSERT INTO stations (department_id, id, code, name, location, active,"
                " created_at, created_by, updated_at, updated_by)"
                " VALUES ($1, $2, $3, 'hall', '', true, $4, $5, $4, $5)",
                dept,
                new_id(),
                code,
                now,
                admin,
            )
        if campaign:  # one platform-wide campaign, with the daily cap lifted
            campaign_id = new_id()
            await conn.execute(
                "INSERT INTO campaigns (id, department_id, name, starts_at, ends_at, policy,"
                " daily_cap_points, created_at, created_by)"
                " VALUES ($1, NULL, 'bench', $2, $3, 'auto', 2000000000, $2, $4)",
                campaign_id,
                now - timedelta(hours=1),
                now + timedelta(days=2),
                admin,
            )
            await conn.execute(
                "INSERT INTO campaign_rates (campaign_id, category, points, updated_at, updated_by)"
                " VALUES ($1, 'ink_cartridge', 20, $2, $3)",
                campaign_id,
                now,
                admin,
            )
        crowds = []
        for _ in range(points):
            lines = []
            users = []
            for i in range(EMPLOYEES):
                dept_index = i % departments
                user = new_id()
                users.append((user, dept_ids[dept_index]))
                token = Token(
                    sub=user,
                    exp=now + timedelta(hours=6),
                    iat=now,
                    jti=secrets.token_hex(16),
                ).encode(secret, "HS256")
                lines.append((token, codes[dept_index], user))
            await conn.executemany(
                "INSERT INTO users (id, username, display_name, password_hash, department_id,"
                " is_active, created_at) VALUES ($1, $1, 'employee', 'x', $2, true, $3)",
                [(u, d, now) for u, d in users],
            )
            await conn.executemany(
                "INSERT INTO user_roles (user_id, role) VALUES ($1, 'employee')",
                [(u,) for u, _ in users],
            )
            await conn.executemany(
                "INSERT INTO raw_balances (user_id, points) VALUES ($1, 0)",
                [(u,) for u, _ in users],
            )
            async with db.transaction(factory) as session:
                for user, dept in users:
                    await open_accounts(session, dept, user)
            crowds.append(Crowd(lines))
        return crowds
    finally:
        await conn.close()
        await engine.dispose()


# --- servers ----------------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants so far."""
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


class Server:
    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log = log
        with log.open("w") as f:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                env=env,
                stdout=f,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{name} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()


# --- load -------------------------------------------------------------------------------------


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: float  # server CPU per request


def wrk(server: Server, path: str, crowd: Path, mode: str, conns: int, seconds: float) -> Result:
    cpu_before = server.cpu()
    run = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
         "--latency", "-s", str(LUA), f"{server.url}{path}", "--", str(crowd), mode],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    cpu = server.cpu() - cpu_before
    line = next(x for x in run.stdout.splitlines() if x.startswith("RESULT "))
    r = json.loads(line.removeprefix("RESULT "))
    ok = r["requests"] - r["errors"]
    return Result(
        rps=ok / r["seconds"],
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        errors=r["errors"],
        cpu_ms=1000 * cpu / max(ok, 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--postgres", default=os.environ.get("EXCHANGE_BENCH_POSTGRES_URL", DEFAULT_PG)
    )
    parser.add_argument("--seconds", type=float, default=10, help="per measured point")
    parser.add_argument("--warmup", type=float, default=2, help="per point, not measured")
    parser.add_argument("--workers", type=int, nargs="+", default=list(WORKERS))
    parser.add_argument("--connections", type=int, nargs="+", default=list(CONNECTIONS))
    parser.add_argument(
        "--log-level", default="INFO", help="the service's EXCHANGE_LOG_LEVEL (INFO logs a "
        "line per request and per response, as in production)"
    )  # fmt: skip
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit(
            "bench/http.py needs wrk, the HTTP load generator: apt-get install -y wrk "
            "(Debian/Ubuntu) or brew install wrk (macOS)."
        )

    name = f"http_bench_{secrets.token_hex(4)}"
    admin_dsn = args.postgres.replace("+asyncpg", "")

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    url = f"{args.postgres.rsplit('/', 1)[0]}/{name}"
    dsn = url.replace("+asyncpg", "")
    tmp = Path(tempfile.mkdtemp(prefix="http-bench-"))
    servers: list[Server] = []
    try:
        db.upgrade(url)
        from bench.raw_dropoffs import SCHEMA

        async def raw_schema() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(SCHEMA)
            finally:
                await conn.close()

        asyncio.run(raw_schema())
        secret = secrets.token_urlsafe(48)
        n_points = len(args.workers) * len(args.connections)
        crowds = {
            scenario: asyncio.run(seed(url, secret, departments, n_points, campaign=first))
            for first, (scenario, departments) in zip((True, False), SCENARIOS.items(), strict=True)
        }
        env = {
            **os.environ,
            "EXCHANGE_DATABASE_URL": url,
            "EXCHANGE_DATA_DIR": str(tmp / "data"),
            "EXCHANGE_JWT_SECRET": secret,
            "EXCHANGE_LOG_FORMAT": "json",
            "EXCHANGE_LOG_LEVEL": args.log_level,
            "EXCHANGE_BENCH_RAW_DSN": dsn,
        }
        bin_dir = Path(sys.executable).parent
        out(f"# bench/http.py — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
            f"{args.seconds:g} s per point after {args.warmup:g} s warm-up")  # fmt: skip
        rows = []
        for workers in args.workers:
            service = Server(
                "service",
                [str(bin_dir / "exchange"), "serve", "--workers", str(workers)],
                env,
                tmp / f"service-{workers}.log",
            )
            servers.append(service)
            raw = Server(
                "raw",
                [str(bin_dir / "uvicorn"), "bench.raw_dropoffs:create_app", "--factory",
                 "--workers", str(workers), "--no-access-log", "--log-level", "warning"],
                env,
                tmp / f"raw-{workers}.log",
            )  # fmt: skip
            servers.append(raw)
            for scenario in SCENARIOS:
                for conns in args.connections:
                    index = args.workers.index(workers) * len(args.connections)
                    crowd = crowds[scenario][index + args.connections.index(conns)]
                    path = crowd.write(tmp / f"crowd-{secrets.token_hex(4)}.txt")
                    measured = {}
                    for target, route, mode in ((service, "/api/dropoffs", "service"),
                                                (raw, "/dropoffs", "raw")):  # fmt: skip
                        if args.warmup:
                            wrk(target, route, path, mode, conns, args.warmup)
                        measured[mode] = wrk(target, route, path, mode, conns, args.seconds)
                    s, r = measured["service"], measured["raw"]
                    row = [
                        scenario, str(conns), str(workers),
                        f"{s.rps:,.0f}", f"{s.p50_ms:.1f}", f"{s.p99_ms:.1f}", f"{s.cpu_ms:.2f}",
                        f"{r.rps:,.0f}", f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}", f"{r.cpu_ms:.2f}",
                        f"{s.rps / r.rps:.2f}",
                        f"{s.errors}/{r.errors}",
                    ]  # fmt: skip
                    rows.append(row)
                    out("  " + " | ".join(row))
            service.stop()
            raw.stop()
        table(
            "POST /api/dropoffs: the service beside the raw route",
            ["employees", "conns", "workers", "service req/s", "p50 ms", "p99 ms",
             "CPU ms/req", "raw req/s", "p50 ms", "p99 ms", "CPU ms/req", "ratio",
             "non-2xx svc/raw"],
            rows,
        )  # fmt: skip
    finally:
        for server in servers:
            if server.process.poll() is None:
                server.stop()
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
