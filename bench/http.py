"""HTTP benchmark: drop-offs, orders and pickups through the real server (`exchange serve`),
beside a raw Litestar + asyncpg route doing a drop-off's durable work (bench/raw_dropoffs.py)
on the same server software, driven by wrk; server CPU and PostgreSQL CPU per request, the
statements and PL/pgSQL functions PostgreSQL spent its time in, and optionally a sampling
profile of the server (py-spy).

    apt-get install -y wrk                        # the load generator (C, one event loop)
    uv run python bench/http.py --seconds 10      # its own PostgreSQL cluster (initdb)
    uv run python bench/http.py --postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres

It never touches an existing database: it starts a PostgreSQL cluster of its own in a
temporary directory (or, with --postgres-url, creates and drops a scratch database there).
See bench/README.md for the method and how to read the tables.
"""

import sys
from pathlib import Path

# This file is named http.py: its directory must not shadow the standard library's `http`.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from litestar.security.jwt import Token  # noqa: E402

from api import db  # noqa: E402
from api.cli import SERVERS  # noqa: E402
from bench.raw_dropoffs import SCHEMA as RAW_SCHEMA  # noqa: E402
from bench.tables import out, table  # noqa: E402
from catalog.models import new_id  # noqa: E402
from exchange.points import open_accounts  # noqa: E402

# The latency target is stated for two departments; one department is the worst case
# (every writer takes turns on one ledger head), twenty the common one.
SCENARIOS = {
    "200 over 20 departments": 20,
    "200 in 2 departments": 2,
    "200 in 1 department": 1,
}
EMPLOYEES = 200
PRODUCTS = 10  # per department
ROUTES = ("dropoffs", "orders", "pickups")
PATHS = {"dropoffs": "/api/dropoffs", "orders": "/api/orders", "pickups": "/api/pickups"}
MODES = {"dropoffs": "dropoff", "orders": "order", "pickups": "pickup"}
LUA = Path(__file__).resolve().parent / "wrk.lua"
RESULTS = Path(__file__).resolve().parent / "results"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FUNDING_GRAMS = 50_000  # one paper drop-off per employee: 50,000 points at 1,000 per kg
PAPER_RATE = 1_000
STATS_FLUSH_SECONDS = 1.5  # backends publish their function counts within 1 s of going idle


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- CPU of process trees, from /proc -----------------------------------------------------------


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
    """User + system CPU of a process and all its descendants so far, those that have ended
    included (their time is added to their parent's once it has waited for them)."""
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return total / CLOCK_TICKS


# --- PostgreSQL: a cluster of the benchmark's own, or a scratch database on a given server -----


def postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parent)
    if not found:
        raise SystemExit(
            "bench/http.py starts its own PostgreSQL with initdb, which is not installed "
            "(apt-get install -y postgresql); or pass --postgres-url to use a running server."
        )
    return found[-1].parent


class Cluster:
    """A PostgreSQL cluster in a temporary directory, on a free port, with pg_stat_statements
    preloaded and PL/pgSQL functions tracked; only the benchmark uses it, so the CPU of its
    processes is the CPU the benchmark's requests cost. initdb refuses to run as root, so as
    root the cluster runs as the `postgres` user."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="http-bench-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_owner:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
        settings = {
            "port": self.port,
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.dir}'",
            "max_connections": 200,
            "shared_preload_libraries": "'pg_stat_statements'",
            "track_functions": "'pl'",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"),
                  "-w", "-t", "120", "start")  # fmt: skip
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        subprocess.run([*self.as_owner, str(self.bin / program), *args],
                       check=True, capture_output=True, cwd=self.dir)  # fmt: skip

    @property
    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def cpu(self) -> float:
        return cpu_seconds(self.postmaster)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


async def execute(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


# --- what PostgreSQL did in a window (pg_stat_statements, pg_stat_user_functions) ---------------


@dataclass
class Statement:
    calls: int
    total_ms: float
    query: str


@dataclass
class Function:
    name: str
    calls: int
    total_ms: float
    self_ms: float


async def reset_stats(dsn: str) -> None:
    await execute(dsn, "SELECT pg_stat_statements_reset()", "SELECT pg_stat_reset()")


async def read_stats(dsn: str, top: int) -> tuple[list[Statement], list[Function]]:
    conn = await asyncpg.connect(dsn)
    try:
        statements = await conn.fetch(
            "SELECT calls, total_exec_time, query FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND query !~* 'pg_stat' ORDER BY total_exec_time DESC LIMIT $1",
            top,
        )
        functions = await conn.fetch(
            "SELECT funcname, calls, total_time, self_time FROM pg_stat_user_functions"
            " ORDER BY total_time DESC"
        )
    finally:
        await conn.close()
    return (
        [Statement(r["calls"], r["total_exec_time"], r["query"]) for r in statements],
        [Function(r["funcname"], r["calls"], r["total_time"], r["self_time"]) for r in functions],
    )


def has_stat_statements(dsn: str) -> bool:
    async def check() -> bool:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await conn.fetchval("SELECT count(*) FROM pg_stat_statements")
            return True
        except asyncpg.PostgresError:
            return False
        finally:
            await conn.close()

    return asyncio.run(check())


# --- seed data ----------------------------------------------------------------------------------


@dataclass
class Department:
    id: str
    station: str
    coordinator: str  # bearer token
    products: list[str] = field(default_factory=list)


@dataclass
class Scenario:
    name: str
    departments: list[Department]
    crowds: list[list[tuple[str, str, str]]]  # per measured point: (token, dept id, user id)

    def department(self, department_id: str) -> Department:
        return next(d for d in self.departments if d.id == department_id)


def bearer(secret: str, user: str, now: datetime) -> str:
    return Token(
        sub=user, exp=now + timedelta(hours=12), iat=now, jti=secrets.token_hex(16)
    ).encode(secret, "HS256")


async def seed(
    url: str, secret: str, name: str, departments: int, points: int, *, campaign: bool
) -> Scenario:
    """Approved departments with a collection point and a coordinator each, one open campaign
    with the daily cap lifted (the first scenario adds it), and `points` crowds of EMPLOYEES
    fresh employees (so a user's daily sum stays as small as in life), their ledger accounts
    opened as when a member joins."""
    engine = db.create_engine(url)
    factory = db.create_session_factory(engine)
    now = datetime.now(UTC)
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    users = "INSERT INTO users (id, username, display_name, password_hash, department_id,"
    users += " is_active, created_at) VALUES ($1, $1, 'bench', 'x', $2, true, $3)"
    try:
        admin = new_id()
        await conn.execute(users, admin, None, now)
        made = []
        for _ in range(departments):
            dept, code, coordinator = new_id(), secrets.token_hex(5), new_id()
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
            await conn.execute(users, coordinator, dept, now)
            await conn.execute(
                "INSERT INTO user_roles (user_id, role) VALUES ($1, 'coordinator')", coordinator
            )
            made.append(Department(dept, code, bearer(secret, coordinator, now)))
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
            await conn.executemany(
                "INSERT INTO campaign_rates (campaign_id, category, points, updated_at, updated_by)"
                " VALUES ($1, $2, $3, $4, $5)",
                [
                    (campaign_id, "ink_cartridge", 20, now, admin),
                    (campaign_id, "paper", PAPER_RATE, now, admin),
                ],
            )
        crowds = []
        for _ in range(points):
            crowd = []
            for i in range(EMPLOYEES):
                user, dept = new_id(), made[i % departments].id
                crowd.append((bearer(secret, user, now), dept, user))
            await conn.executemany(users, [(u, d, now) for _, d, u in crowd])
            await conn.executemany(
                "INSERT INTO user_roles (user_id, role) VALUES ($1, 'employee')",
                [(u,) for _, _, u in crowd],
            )
            await conn.executemany(
                "INSERT INTO raw_balances (user_id, points) VALUES ($1, 0)",
                [(u,) for _, _, u in crowd],
            )
            async with db.transaction(factory) as session:
                for _, dept, user in crowd:
                    await open_accounts(session, dept, user)
            crowds.append(crowd)
        return Scenario(name, made, crowds)
    finally:
        await conn.close()
        await engine.dispose()


async def post_all(
    base: str, calls: list[tuple[str, dict[str, object], dict[str, str]]], concurrency: int = 16
) -> list[dict[str, object]]:
    """POST every (path, body, headers), `concurrency` at a time; each must answer 201."""
    limit = asyncio.Semaphore(concurrency)

    async def one(client: httpx.AsyncClient, path: str, body: object, headers: dict[str, str]):
        async with limit:
            response = await client.post(path, json=body, headers=headers)
        if response.status_code != 201:
            raise SystemExit(f"seeding {path} failed: {response.status_code} {response.text}")
        return response.json()

    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        return await asyncio.gather(*(one(client, *call) for call in calls))


def headers(token: str, key: bool = True) -> dict[str, str]:
    found = {"Authorization": f"Bearer {token}"}
    if key:
        found["Idempotency-Key"] = str(uuid.uuid4())
    return found


def prepare_products(base: str, scenario: Scenario) -> None:
    """PRODUCTS products per department with ample stock, priced at one point; employees
    order them in turn, as a catalog's orders spread over its products."""
    missing = [d for d in scenario.departments if not d.products]
    calls = [
        (
            f"/api/departments/{d.id}/products",
            {"name": f"bench {n}", "unit": "bag", "price_points": 1, "stock": 1_000_000},
            headers(d.coordinator, key=False),
        )
        for d in missing
        for n in range(PRODUCTS)
    ]
    made = iter(asyncio.run(post_all(base, calls)))
    for department in missing:
        department.products = [str(next(made)["id"]) for _ in range(PRODUCTS)]


def product_of(department: Department, index: int) -> str:
    return department.products[index % PRODUCTS]


def fund(base: str, scenario: Scenario, crowd: list[tuple[str, str, str]]) -> None:
    """One paper drop-off per employee: points for every order of the run."""
    calls = [
        (
            "/api/dropoffs",
            {
                "station_code": scenario.department(dept).station,
                "category": "paper",
                "quantity": FUNDING_GRAMS,
            },
            headers(token),
        )
        for token, dept, _ in crowd
    ]
    asyncio.run(post_all(base, calls))


def place_orders(
    base: str, scenario: Scenario, crowd: list[tuple[str, str, str]], count: int
) -> list[tuple[str, str]]:
    """`count` orders by the crowd; their (coordinator token, pickup token)."""
    buyers = [scenario.department(crowd[i % len(crowd)][1]) for i in range(count)]
    calls = [
        ("/api/orders", {"product_id": product_of(d, i)}, headers(crowd[i % len(crowd)][0]))
        for i, d in enumerate(buyers)
    ]
    placed = asyncio.run(post_all(base, calls))
    return [(d.coordinator, str(o["pickup_token"])) for d, o in zip(buyers, placed, strict=True)]


# --- servers ------------------------------------------------------------------------------------


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


# --- the sampling profile -----------------------------------------------------------------------

# Where a sampled leaf frame's file lies, in the order tried: the first match names its group.
PACKAGES = [
    ("SQLAlchemy + SQLModel", ("sqlalchemy/", "sqlmodel/")),
    ("asyncpg", ("asyncpg/",)),
    ("aiosqlite + sqlite3", ("aiosqlite/", "sqlite3/")),
    ("Prometheus (client + Litestar's middleware)",
     ("prometheus_client/", "litestar/plugins/prometheus/")),
    ("Litestar", ("litestar/",)),
    ("msgspec", ("msgspec/",)),
    ("server (uvicorn, h11, httptools, granian)",
     ("uvicorn/", "h11/", "httptools/", "granian/")),
    ("asyncio + uvloop", ("asyncio/", "uvloop/", "selectors.py")),
    ("PyJWT + cryptography", ("jwt/", "cryptography/")),
    ("structlog, logging, json", ("structlog/", "logging/", "json/")),
    ("ours (api, exchange, ledger, catalog)",
     ("/api/", "/exchange/", "/ledger/", "/catalog/")),
    # An idle thread-pool worker waiting for work, which py-spy sometimes samples as active.
    ("thread-pool workers waiting", ("concurrent/futures/thread.py",)),
]  # fmt: skip
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::\d+)?\)$")


def package_of(path: str) -> str:
    path = f"/{path}"  # py-spy names the server's own files relative to its working directory
    for name, marks in PACKAGES:
        if any(mark in path for mark in marks):
            return name
    return "other (standard library, …)"


@dataclass
class Profile:
    samples: int
    by_package: list[tuple[str, int]]
    by_function: list[tuple[str, int]]
    stacks: Path


def read_profile(stacks: Path, top: int) -> Profile:
    """Leaf-frame shares of py-spy's collapsed stacks ("frame;frame;...;leaf count")."""
    packages: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    for line in stacks.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if not frames or not count.isdigit():
            continue
        # With --subprocesses each stack starts with a "process PID:command" frame.
        stack = [f for f in frames.split(";") if not f.startswith("process ")]
        leaf = stack[-1] if stack else "(no Python frame: native code)"
        match = FRAME.match(leaf)
        path = match.group("file") if match else leaf
        packages[package_of(path)] += int(count)
        where = "/".join(path.split("/")[-2:])
        short = f"{match.group('function')} ({where})" if match else leaf
        functions[short] += int(count)
    return Profile(
        sum(packages.values()), packages.most_common(), functions.most_common(top), stacks
    )


def print_profile(title: str, profile: Profile) -> None:
    total = max(profile.samples, 1)
    table(
        f"{title}: leaf frames by package ({profile.samples} samples, idle left out)",
        ["package", "share"],
        [[name, f"{100 * n / total:.1f}%"] for name, n in profile.by_package],
    )
    table(
        f"{title}: top leaf functions",
        ["function (file)", "share"],
        [[name, f"{100 * n / total:.1f}%"] for name, n in profile.by_function],
    )
    out(f"\ncollapsed stacks: {profile.stacks}")


# --- one measured window ------------------------------------------------------------------------


@dataclass
class Window:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_ms: float  # server CPU per successful request
    pg_cpu_ms: float | None  # PostgreSQL CPU per successful request (own cluster only)
    statements: list[Statement] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)


def wrk(
    url: str, lines: Path, mode: str, conns: int, seconds: float, start: int = 0
) -> dict[str, float]:
    """One wrk run; `start` is the first line a pickup run uses (each token is good once)."""
    run = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
         "--latency", "-s", str(LUA), url, "--", str(lines), mode, str(start)],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    line = next(x for x in run.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


@dataclass
class Bench:
    args: argparse.Namespace
    dsn: str  # the scratch database, for pg_stat_* (None: not available)
    cluster: Cluster | None
    stats: bool
    profiles: Path
    used: dict[Path, int] = field(default_factory=dict)  # lines of each file sent so far

    def wrk(self, url: str, lines: Path, mode: str, conns: int, seconds: float) -> dict[str, float]:
        r = wrk(url, lines, mode, conns, seconds, self.used.get(lines, 0))
        # Those answered, and at most one more in flight per connection when wrk stopped.
        self.used[lines] = self.used.get(lines, 0) + int(r["requests"]) + conns
        return r

    def measure(self, server: Server, route: str, lines: Path, mode: str, conns: int) -> Window:
        url = f"{server.url}{route}"
        if self.args.warmup:
            self.wrk(url, lines, mode, conns, self.args.warmup)
        if self.stats:
            time.sleep(STATS_FLUSH_SECONDS)  # the warm-up's counts reach the shared stats...
            asyncio.run(reset_stats(self.dsn))  # ... before they are zeroed
        pg_before = self.cluster.cpu() if self.cluster else 0.0
        cpu_before = server.cpu()
        r = self.wrk(url, lines, mode, conns, self.args.seconds)
        cpu = server.cpu() - cpu_before
        pg_cpu = self.cluster.cpu() - pg_before if self.cluster else None
        ok = max(r["requests"] - r["errors"], 1)
        window = Window(
            rps=(r["requests"] - r["errors"]) / r["seconds"],
            p50_ms=r["p50_us"] / 1000,
            p99_ms=r["p99_us"] / 1000,
            errors=int(r["errors"]),
            requests=int(r["requests"]),
            cpu_ms=1000 * cpu / ok,
            pg_cpu_ms=None if pg_cpu is None else 1000 * pg_cpu / ok,
        )
        if self.stats:
            time.sleep(STATS_FLUSH_SECONDS)
            window.statements, window.functions = asyncio.run(read_stats(self.dsn, self.args.top))
        return window

    def profile(
        self, server: Server, route: str, lines: Path, mode: str, conns: int, title: str
    ) -> None:
        stacks = self.profiles / f"{re.sub(r'[^a-z0-9]+', '-', title.lower()).strip('-')}.txt"
        spy = subprocess.Popen(
            [str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
             str(server.process.pid), "--subprocesses", "--format", "raw", "--output",
             str(stacks), "--duration", str(max(1, round(self.args.seconds))), "--rate", "100"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        time.sleep(1)  # py-spy attaches before the load starts
        self.wrk(f"{server.url}{route}", lines, mode, conns, self.args.seconds)
        _, errors = spy.communicate(timeout=120)
        if not stacks.exists():
            out(f"py-spy wrote no profile: {errors.strip()[-500:]}")
            return
        print_profile(title, read_profile(stacks, self.args.top))


def print_statements(title: str, window: Window) -> None:
    ok = max(window.requests - window.errors, 1)
    if window.statements:
        table(
            f"{title}: top statements by total time (pg_stat_statements)",
            ["ms/req", "calls/req", "ms/call", "statement"],
            [
                [
                    f"{s.total_ms / ok:.3f}",
                    f"{s.calls / ok:.2f}",
                    f"{s.total_ms / max(s.calls, 1):.3f}",
                    " ".join(s.query.split())[:110],
                ]
                for s in window.statements
            ],
        )
    if window.functions:
        table(
            f"{title}: PL/pgSQL functions (pg_stat_user_functions)",
            ["function", "calls/req", "total ms/call", "self ms/call"],
            [
                [
                    f.name,
                    f"{f.calls / ok:.2f}",
                    f"{f.total_ms / max(f.calls, 1):.3f}",
                    f"{f.self_ms / max(f.calls, 1):.3f}",
                ]
                for f in window.functions
            ],
        )


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--postgres-url",
        help="use this PostgreSQL server (a scratch database on it) instead of a cluster of the "
        "benchmark's own; PostgreSQL's CPU is then not measured",
    )
    parser.add_argument("--seconds", type=float, default=10, help="per measured window")
    parser.add_argument("--warmup", type=float, default=2, help="before each window, not measured")
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument("--connections", type=int, nargs="+", default=[32])
    parser.add_argument("--routes", nargs="+", choices=ROUTES, default=list(ROUTES))
    parser.add_argument(
        "--server", nargs="+", choices=SERVERS, default=["uvicorn"],
        help="server software, side by side (`exchange serve --server`); the raw route runs on "
        "the same",
    )  # fmt: skip
    parser.add_argument("--profile", action="store_true", help="py-spy the service, per window")
    parser.add_argument("--top", type=int, default=8, help="statements and functions shown")
    parser.add_argument(
        "--pickup-orders", type=int, default=None,
        help="orders placed beforehand per pickup window [default: 800 per second of load]",
    )  # fmt: skip
    parser.add_argument(
        "--departments", nargs="+", type=int, choices=list(SCENARIOS.values()),
        default=list(SCENARIOS.values()),
        help="the scenarios, by how many departments the 200 employees are in [default: all]",
    )  # fmt: skip
    parser.add_argument(
        "--log-level", default="INFO", help="the service's EXCHANGE_LOG_LEVEL (INFO logs a line "
        "per request, as in production)"
    )  # fmt: skip
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit(
            "bench/http.py needs wrk, the HTTP load generator: apt-get install -y wrk "
            "(Debian/Ubuntu) or brew install wrk (macOS)."
        )
    if args.profile and not Path(sys.executable).with_name("py-spy").exists():
        raise SystemExit("--profile needs py-spy: uv sync (it is in the dev dependencies)")

    cluster = None if args.postgres_url else Cluster()
    base_url = args.postgres_url or cluster.url  # type: ignore[union-attr]
    name = f"http_bench_{secrets.token_hex(4)}"
    admin_dsn = base_url.replace("+asyncpg", "")
    tmp = Path(tempfile.mkdtemp(prefix="http-bench-"))
    servers: list[Server] = []
    try:
        asyncio.run(execute(admin_dsn, f"CREATE DATABASE {name}"))
        url = f"{base_url.rsplit('/', 1)[0]}/{name}"
        dsn = url.replace("+asyncpg", "")
        db.upgrade(url)
        asyncio.run(execute(dsn, RAW_SCHEMA))
        stats = has_stat_statements(dsn)
        RESULTS.mkdir(exist_ok=True)
        profiles = Path(tempfile.mkdtemp(prefix="profile-", dir=RESULTS))
        bench = Bench(args, dsn, cluster, stats, profiles)
        secret = secrets.token_urlsafe(48)
        points = len(args.server) * len(args.workers) * len(args.connections)
        scenarios = [
            asyncio.run(seed(url, secret, scenario, departments, points, campaign=n == 0))
            for n, (scenario, departments) in enumerate(
                (s, d) for s, d in SCENARIOS.items() if d in args.departments
            )
        ]
        env = {
            **os.environ,
            "EXCHANGE_DATABASE_URL": url,
            "EXCHANGE_DATA_DIR": str(tmp / "data"),
            "EXCHANGE_JWT_SECRET": secret,
            "EXCHANGE_LOG_FORMAT": "json",
            "EXCHANGE_LOG_LEVEL": args.log_level,
            "EXCHANGE_BENCH_RAW_DSN": dsn,
        }
        per_window = args.warmup + args.seconds + (args.seconds if args.profile else 0)
        pickups = args.pickup_orders or math.ceil(800 * per_window)
        load = os.getloadavg()
        postgres = f"own cluster ({cluster.bin})" if cluster else "--postgres-url"
        out(f"# bench/http.py — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
            f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; {args.seconds:g} s per "
            f"window after {args.warmup:g} s warm-up; PostgreSQL: {postgres}"
            f"{'' if stats else ' (no pg_stat_statements)'}")  # fmt: skip
        dropoff_rows, other_rows, function_rows = [], [], []
        point = 0
        for server_name in args.server:
            for workers in args.workers:
                bin_dir = Path(sys.executable).parent
                service = Server(
                    "service",
                    [str(bin_dir / "exchange"), "serve", "--workers", str(workers),
                     "--server", server_name],
                    env,
                    tmp / f"service-{server_name}-{workers}.log",
                )  # fmt: skip
                servers.append(service)
                raw = Server(
                    "raw",
                    [sys.executable, "-m", "bench.raw_dropoffs", "--workers", str(workers),
                     "--server", server_name],
                    env,
                    tmp / f"raw-{server_name}-{workers}.log",
                )  # fmt: skip
                servers.append(raw)
                for conns in args.connections:
                    for scenario in scenarios:
                        prepare_products(service.url, scenario)
                        crowd = scenario.crowds[point]
                        where = f"{server_name}, {scenario.name}, {conns} conns, {workers} w"
                        for route in args.routes:
                            lines = tmp / f"lines-{secrets.token_hex(4)}.txt"
                            if route == "dropoffs":
                                lines.write_text("".join(
                                    f"{t} {scenario.department(d).station} {u}\n"
                                    for t, d, u in crowd))  # fmt: skip
                            elif route == "orders":
                                fund(service.url, scenario, crowd)
                                lines.write_text("".join(
                                    f"{t} {product_of(scenario.department(d), i)}\n"
                                    for i, (t, d, _) in enumerate(crowd)))  # fmt: skip
                            else:
                                if "orders" not in args.routes:
                                    fund(service.url, scenario, crowd)
                                placed = place_orders(service.url, scenario, crowd, pickups)
                                lines.write_text("".join(f"{c} {p}\n" for c, p in placed))
                            title = f"{route}, {where}"
                            s = bench.measure(service, PATHS[route], lines, MODES[route], conns)
                            print_statements(title, s)
                            for f in s.functions:
                                function_rows.append([
                                    route, scenario.name, str(conns), str(workers), f.name,
                                    f"{f.calls / max(s.requests - s.errors, 1):.2f}",
                                    f"{f.total_ms / max(f.calls, 1):.3f}",
                                    f"{f.self_ms / max(f.calls, 1):.3f}",
                                ])  # fmt: skip
                            if args.profile:
                                bench.profile(service, PATHS[route], lines, MODES[route], conns,
                                              title)  # fmt: skip
                            if route == "pickups" and bench.used[lines] > pickups:
                                out(f"warning: {bench.used[lines]} pickups sent, {pickups} "
                                    "orders placed: raise --pickup-orders")  # fmt: skip
                            if route != "dropoffs":
                                row = [
                                    server_name, route, scenario.name, str(conns), str(workers),
                                    f"{s.rps:,.0f}", f"{s.p50_ms:.1f}", f"{s.p99_ms:.1f}",
                                    ms(s.cpu_ms), ms(s.pg_cpu_ms),
                                    ms(s.cpu_ms + (s.pg_cpu_ms or 0)), str(s.errors),
                                ]  # fmt: skip
                                other_rows.append(row)
                                out("  " + " | ".join(row))
                                continue
                            r = bench.measure(raw, "/dropoffs", lines, "raw", conns)
                            print_statements(f"raw route, {where}", r)
                            row = [
                                server_name, scenario.name, str(conns), str(workers),
                                f"{s.rps:,.0f}", f"{s.p50_ms:.1f}", f"{s.p99_ms:.1f}",
                                ms(s.cpu_ms), ms(s.pg_cpu_ms),
                                f"{r.rps:,.0f}", f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}",
                                ms(r.cpu_ms), ms(r.pg_cpu_ms),
                                f"{s.rps / max(r.rps, 1e-9):.2f}", f"{s.errors}/{r.errors}",
                            ]  # fmt: skip
                            dropoff_rows.append(row)
                            out("  " + " | ".join(row))
                    point += 1
                service.stop()
                raw.stop()
        if dropoff_rows:
            table(
                "POST /api/dropoffs: the service beside the raw route (CPU in ms per request)",
                ["server", "employees", "conns", "workers", "service req/s", "p50 ms", "p99 ms",
                 "server CPU", "PG CPU", "raw req/s", "p50 ms", "p99 ms", "server CPU", "PG CPU",
                 "ratio", "non-2xx svc/raw"],
                dropoff_rows,
            )  # fmt: skip
        if other_rows:
            table(
                "POST /api/orders and /api/pickups (CPU in ms per request)",
                ["server", "route", "employees", "conns", "workers", "req/s", "p50 ms",
                 "p99 ms", "server CPU", "PG CPU", "both", "non-2xx"],
                other_rows,
            )  # fmt: skip
        if function_rows:
            table(
                "PL/pgSQL functions per window (track_functions = pl)",
                ["route", "employees", "conns", "workers", "function", "calls/req",
                 "total ms/call", "self ms/call"],
                function_rows,
            )  # fmt: skip
        if args.profile:
            out(f"\nprofiles (py-spy collapsed stacks) in {profiles}")
    finally:
        for server in servers:
            if server.process.poll() is None:
                server.stop()
        if cluster is None:
            asyncio.run(execute(admin_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        else:
            cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
