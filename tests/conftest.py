"""Shared fixtures: every database test runs on SQLite, and on PostgreSQL when
EXCHANGE_TEST_POSTGRES_URL names a server (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/postgres).

Each test gets a database of its own, copied from one migrated once per run, so tests never
see each other's rows; the PostgreSQL databases this run creates are dropped at its end.
"""

import asyncio
import contextlib
import fcntl
import os
import secrets
import shutil
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db
from api.app import bind, create_app
from api.demo import seed_demo
from api.jobs import create_runner
from api.settings import Settings
from catalog import identity, passwords
from catalog.departments import NewDepartment, register_department
from catalog.models import Department, DepartmentStatus, User

POSTGRES_URL = os.environ.get("EXCHANGE_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]
RUN_PREFIX = f"exchange_test_{secrets.token_hex(4)}"


def _with_database(url: str, name: str) -> str:
    return f"{url.rsplit('/', 1)[0]}/{name}"


def _in_a_thread(work: Callable[[], object]) -> None:
    """Runs set-up that starts an event loop of its own (Alembic, asyncpg, the world's seed)
    away from any loop this thread may be running (Playwright's sync API runs one)."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(work).result()


def _admin(statement: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(POSTGRES_URL.replace("+asyncpg", ""))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    _in_a_thread(lambda: asyncio.run(run()))


# The files that take longest, started first (with --no-loadscope-reorder in pyproject.toml),
# so that the two workers end together: xdist's own order, files with the most tests first,
# started these last and left one worker fuzzing alone at the end. Ranked by `--durations`;
# the other files keep their order.
LONGEST_FIRST = [
    "tests/foundation/test_fuzzing.py",
    "tests/foundation/test_crash_recovery.py",
    "tests/foundation/test_job_restart.py",
    "tests/notify/test_crash.py",
    "tests/browser/test_exchange_journey.py",
    "tests/browser/test_offline_desk.py",
    "tests/foundation/test_serve.py",
    "tests/foundation/test_cli.py",
    "tests/foundation/test_backup.py",
]


def _vacuum_catalog_of_databases(session: pytest.Session) -> None:
    """A run creates and drops some six hundred PostgreSQL databases, and the server's catalog
    of databases keeps a dead row for each until it is vacuumed, which autovacuum was not seen
    to do: after a dozen runs every CREATE and DROP DATABASE took three times the CPU (0.31 s
    against 0.10 s), and a run a third longer. Once a run, before its workers start and after
    they end (the controller process; without xdist, the one process)."""
    if POSTGRES_URL and not hasattr(session.config, "workerinput"):
        _admin("VACUUM pg_database")


pytest_sessionstart = pytest_sessionfinish = _vacuum_catalog_of_databases


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: n for n, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.partition("::")[0], len(rank)))


CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PRODUCTION_HASHER = passwords._hasher


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Real argon2id, with its cheapest parameters, everywhere in the run (the servers the
    browser and fuzzing tests start in this process too): at ~0.1 s a hash by design, the
    production cost adds up to minutes. A test of hashing itself asks for
    `production_password_hashing`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "_hasher", CHEAP_HASHER)
        yield


@pytest.fixture
def production_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_hasher", PRODUCTION_HASHER)


def seed_database(
    url: str, add: Callable[[async_sessionmaker[AsyncSession]], Awaitable[object]]
) -> None:
    """Writes `add`'s rows into the database at `url`, off any event loop this thread runs."""

    async def run() -> None:
        engine = db.create_engine(url)
        try:
            await add(db.create_session_factory(engine))
        finally:
            await engine.dispose()

    _in_a_thread(lambda: asyncio.run(run()))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "exchange.db"
    _in_a_thread(lambda: db.upgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def sqlite_world_template(sqlite_template: Path) -> Path:
    path = sqlite_template.with_name("world.db")
    shutil.copy(sqlite_template, path)
    seed_database(f"sqlite+aiosqlite:///{path}", _add_world)
    return path


@pytest.fixture(scope="session")
def sqlite_demo_template(sqlite_template: Path) -> Path:
    """The template with the demo data set (without its history), seeded once a worker: the
    browser tests' servers and the fuzzer's start from a copy (a second and more of seeding
    each)."""
    path = sqlite_template.with_name("demo.db")
    shutil.copy(sqlite_template, path)
    seed_database(f"sqlite+aiosqlite:///{path}", seed_demo)
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    name = f"{RUN_PREFIX}_template"
    _admin(f"CREATE DATABASE {name}")
    _in_a_thread(lambda: db.upgrade(_with_database(POSTGRES_URL, name)))
    yield name
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def postgres_world_template(postgres_template: str) -> Iterator[str]:
    name = f"{RUN_PREFIX}_world"
    _admin(f"CREATE DATABASE {name} TEMPLATE {postgres_template}")
    seed_database(_with_database(POSTGRES_URL, name), _add_world)
    yield name
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def copy_database(url: str) -> str:
    """A copy of a database no one is connected to (its engines disposed), beside it: a forked
    log's starting point. A PostgreSQL copy is named after the original with `_fork`, for the
    test to drop."""
    if url.startswith("sqlite"):
        source = url.split(":///", 1)[1]
        target = source.replace(".db", "-fork.db")
        with contextlib.closing(sqlite3.connect(source)) as src:
            with contextlib.closing(sqlite3.connect(target)) as dst:
                src.backup(dst)
        return f"sqlite+aiosqlite:///{target}"
    original = url.rsplit("/", 1)[1]
    _admin(f"CREATE DATABASE {original}_fork TEMPLATE {original}")
    return _with_database(url, f"{original}_fork")


class Clones:
    """Copies of the template database, each made while the test before the one that takes it
    runs, and dropped after it, on threads of their own: CREATE DATABASE ... TEMPLATE copies
    the template (0.1–1 s on a busy machine) and DROP DATABASE waits for a checkpoint
    (0.4–1.7 s), and a test would otherwise wait for both every time."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.creating = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clone")
        # Apart, so that a drop waiting for its checkpoint never holds up the next clone; and
        # several at once, because drops at once share a checkpoint: 8 took 1.3-1.6 s together
        # against 10-13 s one after another.
        self.dropping = ThreadPoolExecutor(max_workers=4, thread_name_prefix="drop")
        self.next: Future[str] | None = None

    def _create(self) -> str:
        name = f"{RUN_PREFIX}_{secrets.token_hex(4)}"
        _admin(f"CREATE DATABASE {name} TEMPLATE {self.template}")
        return name

    def take(self) -> str:
        """A fresh database of its own for the caller, and the next one started."""
        name = (self.next or self.creating.submit(self._create)).result()
        self.next = self.creating.submit(self._create)
        return name

    def drop(self, name: str) -> None:
        self.dropping.submit(_admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        if self.next is not None:
            self.drop(self.next.result())
        self.creating.shutdown(wait=True)
        self.dropping.shutdown(wait=True)


@pytest.fixture(scope="session")
def postgres_clones(postgres_template: str) -> Iterator[Clones]:
    clones = Clones(postgres_template)
    yield clones
    clones.close()


@pytest.fixture(scope="session")
def postgres_world_clones(postgres_world_template: str) -> Iterator[Clones]:
    clones = Clones(postgres_world_template)
    yield clones
    clones.close()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated database of the parametrized kind: empty, or holding the `world`
    when the test asks for it (copied from a template seeded once, where seeding it for each
    test took a fifth of a second)."""
    seeded = "world" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "exchange.db"
        template = "sqlite_world_template" if seeded else "sqlite_template"
        shutil.copy(request.getfixturevalue(template), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    clones: Clones = request.getfixturevalue(
        "postgres_world_clones" if seeded else "postgres_clones"
    )
    name = clones.take()
    yield _with_database(POSTGRES_URL, name)
    clones.drop(name)


@pytest.fixture
def postgres_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh PostgreSQL database, for the concurrency guarantees that need a real server.

    Such races open dozens of connections each, so across test workers (pytest-xdist)
    they take turns: two at once could pass PostgreSQL's default of 100 connections.
    """
    if not POSTGRES_URL:
        pytest.skip("EXCHANGE_TEST_POSTGRES_URL is not set")
    clones: Clones = request.getfixturevalue("postgres_clones")
    # The parent of a worker's base temp dir is shared by all workers of the run.
    lock_path = tmp_path_factory.getbasetemp().parent / "postgres-races.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        name = clones.take()
        yield _with_database(POSTGRES_URL, name)
        # Its connections gone before the next race takes the lock; the drop itself, which
        # waits for a checkpoint, goes on in the background.
        _admin(
            f"ALTER DATABASE {name} ALLOW_CONNECTIONS false; "
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
            f"WHERE datname = '{name}'"
        )
        clones.drop(name)


@pytest.fixture(params=["sqlite", "postgres"])
def served_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database for a real server process (`exchange serve`): on PostgreSQL one of
    `postgres_url`'s, since such tests load the server with many connections."""
    if request.param == "sqlite":
        path = tmp_path / "exchange.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def pg_engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    # One connection per concurrent task of the largest race (64), within PostgreSQL's
    # default of 100 connections beside the other workers' tests.
    engine = db.create_engine(postgres_url, pool_size=64, max_overflow=0, pool_timeout=120)
    yield engine
    await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return db.create_session_factory(engine)


@pytest.fixture
def pg_session_factory(pg_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return db.create_session_factory(pg_engine)


# --- The HTTP app -----------------------------------------------------------------------------

PASSWORD = "correct-horse-9"


JWT_SECRET = secrets.token_urlsafe(48)  # one per run, so that one app serves every test


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        jwt_secret=JWT_SECRET,
        log_format="json",
        login_attempts_per_minute=10_000,
        # Beyond any request on a loaded machine (one took 4.5 s on SQLite at a load of 13):
        # tests/foundation/test_deadlines.py and the outage tests set the deadlines they test.
        request_deadline_seconds=60,
        public_base_url="http://exchange.test",
        # The app under test only queues background jobs; a test runs them with `run_jobs`.
        job_runners=0,
        # Tests that deliver notifications run the worker themselves (tests/notify).
        notify_interval_seconds=3600,
    )


@pytest.fixture
def run_jobs(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> Callable[[], Awaitable[int]]:
    """Runs every job waiting, each to its end, on the test's own event loop; answers how many
    ran. The service's own runner (api/jobs.py), with its heartbeat and lease, does the same."""
    runner = create_runner(settings, session_factory)

    async def run() -> int:
        ran = 0
        while await runner.run_next():
            ran += 1
        return ran

    return run


_APPS: dict[str, Litestar] = {}
# Settings the app reads from its state on every use, which `bind` replaces, so apps that
# differ only in these are one (the notification tests' stand-in servers get new ports).
BOUND_AT_REQUEST_TIME = {"database_url", "data_dir"} | {
    name for name in Settings.model_fields if name.startswith(("notify_", "smtp_"))
}


def app_for(settings: Settings, *, spare: bool = False) -> Litestar:
    """The app for `settings`, bound to their database and data directory. Building a Litestar
    app costs a third of a second of CPU and nearly every test needs one, so each test worker
    builds one for each kind of settings and binds it to each test's own database (everything
    a test could tell apart lives in the app's state: api/app.py `bind`). One client at a
    time: a second test client in the same test runs on an event loop of its own, and needs an
    app (and database connections) of its own: `spare=True` answers a second one."""
    key = settings.model_dump_json(exclude=BOUND_AT_REQUEST_TIME) + ("spare" if spare else "")
    app = _APPS.get(key)
    if app is None:
        app = _APPS[key] = create_app(settings)
    else:
        bind(app.state, settings)
    return app


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app_for(settings)) as client:
        yield client


async def login(
    client: AsyncTestClient[Litestar], username: str, password: str = PASSWORD
) -> dict[str, str]:
    """Signs in through the API and answers the Authorization header to send."""
    response = await client.post(
        "/api/auth/token", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    client.cookies.clear()  # API calls authenticate by bearer token, not by the page cookie
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@dataclass
class World:
    """Two approved departments with staff, and platform staff; every password is PASSWORD."""

    dept_a: str
    dept_b: str
    pending_dept: str
    headers: dict[str, dict[str, str]]


def _department(name: str) -> NewDepartment:
    return NewDepartment(
        name=name,
        village_name=f"{name}村",
        village_county="平江县",
        village_province="湖南省",
        contact_name="联系人",
        contact_phone="0731-0000",
        pickup_location="一楼收发室",
    )


_PASSWORD_HASH: list[str] = []


async def fast_hash(password: str) -> str:
    """Tests reuse one real argon2id hash of PASSWORD, made with the cheapest parameters."""
    if password != PASSWORD:
        return await passwords.hash_password(password)
    if not _PASSWORD_HASH:
        _PASSWORD_HASH.append(CHEAP_HASHER.hash(PASSWORD))
    return _PASSWORD_HASH[0]


def bearer(client: AsyncTestClient[Litestar], user_id: str) -> dict[str, str]:
    token = client.app.state.auth.create_token(user_id, token_unique_jwt_id=secrets.token_hex(16))
    return {"Authorization": f"Bearer {token}"}


WORLD_DEPARTMENTS = {"a": "approved", "b": "approved", "p": "pending"}
WORLD_USERS = [
    ("admin", None, ["admin"]),
    ("auditor", None, ["auditor"]),
    ("coord-a", "a", ["coordinator", "employee"]),
    ("audit-a", "a", ["auditor"]),
    ("emp-a", "a", ["employee"]),
    ("emp-a2", "a", ["employee"]),
    ("coord-b", "b", ["coordinator", "employee"]),
    ("emp-b", "b", ["employee"]),
    ("coord-p", "p", ["coordinator", "employee"]),
]


async def _add_world(session_factory: async_sessionmaker[AsyncSession]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(identity, "hash_password", fast_hash)
        async with db.transaction(session_factory) as session:
            ids = {}
            for key, status in WORLD_DEPARTMENTS.items():
                department = await register_department(
                    session, _department(f"部门{key}"), actor_id=None
                )
                department.status = DepartmentStatus(status)
                session.add(department)
                ids[key] = department.id
            for username, key, roles in WORLD_USERS:
                await identity.create_user(
                    session,
                    username=username,
                    display_name=username.upper(),
                    password=PASSWORD,
                    department_id=ids[key] if key else None,
                    roles=roles,
                )


@pytest.fixture
async def world(
    client: AsyncTestClient[Litestar],
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    """The test's database was copied from a template that holds these rows (`database_url`)."""
    # Members a test adds with PASSWORD get its one cheap hash too.
    monkeypatch.setattr(identity, "hash_password", fast_hash)
    async with session_factory() as session:
        departments = dict((await session.exec(select(Department.name, Department.id))).all())
        users = dict((await session.exec(select(User.username, User.id))).all())
    ids = {key: departments[f"部门{key}"] for key in WORLD_DEPARTMENTS}
    headers = {username: bearer(client, users[username]) for username, _, _ in WORLD_USERS}
    return World(dept_a=ids["a"], dept_b=ids["b"], pending_dept=ids["p"], headers=headers)
