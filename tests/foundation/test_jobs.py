"""Background jobs: exactly one runner works on a job, a job whose runner died is taken over
(and the dead runner can no longer finish it), a stopping runner hands its job back, a job
interrupted too often fails saying so, and a failure is a problem naming what was wrong."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import db
from api.jobs import create_runner, sealer
from api.settings import Settings
from api.sweep import sweep_once
from catalog.errors import InvalidField
from catalog.models import User, utcnow
from exchange import jobs
from exchange.jobs import JobFailed, LeaseLost, Runner, RunningJob
from exchange.models import Job, JobState
from tests.conftest import World

ONE_MEMBER = "username,display_name\nzhao-li,赵力\n".encode()


async def submit_import(client: AsyncTestClient[Litestar], world: World) -> str:
    response = await client.post(
        f"/api/departments/{world.dept_a}/members/import",
        files={"file": ("members.csv", ONE_MEMBER, "text/csv")},
        headers=world.headers["coord-a"],
    )
    assert response.status_code == 202, response.text
    return response.headers["location"]


async def job_answer(client: AsyncTestClient[Litestar], world: World, url: str) -> dict:  # type: ignore[type-arg]
    response = await client.get(url, headers=world.headers["coord-a"])
    assert response.status_code == 200, response.text
    return response.json()


async def expire_leases(factory: async_sessionmaker[AsyncSession]) -> None:
    """As if the runners holding them had died: their leases ran out without a heartbeat."""
    async with db.transaction(factory) as session:
        await session.exec(update(Job).values(lease_until=utcnow()))  # type: ignore[call-overload]


async def usernames(factory: async_sessionmaker[AsyncSession], name: str) -> list[str]:
    async with db.transaction(factory) as session:
        return list((await session.exec(select(User.id).where(User.username == name))).all())


async def test_a_dead_runners_job_is_taken_over_and_the_dead_runner_cannot_finish_it(
    client: AsyncTestClient[Litestar],
    world: World,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    url = await submit_import(client, world)
    dead, other = create_runner(settings, session_factory), create_runner(settings, session_factory)
    claimed = await dead.claim()
    assert claimed is not None
    assert (await job_answer(client, world, url))["state"] == "running"
    assert not await other.run_next()  # its lease holds: nobody else takes it

    await expire_leases(session_factory)
    assert await other.run_next()
    answer = await job_answer(client, world, url)
    assert answer["state"] == "succeeded" and answer["result"]["imported"] == 1

    # The first runner wakes up and tries to finish: its work is rolled back with it.
    with pytest.raises(LeaseLost):
        async with db.transaction(session_factory) as session:
            session.add(User(username="late-write", display_name="X", password_hash="-"))
            await claimed.succeed(session, {"imported": 0})
    assert await usernames(session_factory, "late-write") == []
    assert len(await usernames(session_factory, "zhao-li")) == 1
    assert (await job_answer(client, world, url))["result"]["members"][0]["username"] == "zhao-li"


async def test_a_job_interrupted_too_often_fails_saying_so_and_imports_nothing(
    client: AsyncTestClient[Litestar],
    world: World,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    url = await submit_import(client, world)
    runner = create_runner(settings, session_factory)
    for _ in range(settings.job_max_attempts):
        assert await runner.claim() is not None
        await expire_leases(session_factory)
    assert await runner.claim() is None
    answer = await job_answer(client, world, url)
    assert answer["state"] == "failed"
    assert answer["error"]["title"] == "Interrupted"
    assert "3 times" in answer["error"]["detail"]
    assert await usernames(session_factory, "zhao-li") == []


async def test_a_stopping_runner_hands_its_job_back_to_the_next_one(
    client: AsyncTestClient[Litestar],
    world: World,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    run_jobs: Callable[[], Awaitable[int]],
) -> None:
    url = await submit_import(client, world)
    started = asyncio.Event()

    async def stuck(job: RunningJob) -> None:
        started.set()
        await asyncio.Event().wait()  # until the process stops

    stopping = Runner(session_factory, {"member_import": stuck}, sealer(settings))
    working = asyncio.create_task(stopping.run_next())
    await started.wait()
    working.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await working
    answer = await job_answer(client, world, url)
    assert answer["state"] == "queued"  # at once, not after the lease
    async with db.transaction(session_factory) as session:
        (stored,) = (await session.exec(select(Job))).all()
    assert stored.attempts == 0  # a stop is no fault of the job's: it may stop many times

    assert await run_jobs() == 1
    assert (await job_answer(client, world, url))["state"] == "succeeded"


async def test_runners_claiming_at_once_never_take_the_same_job(
    world: World, settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    (owner,) = await usernames(session_factory, "coord-a")
    async with db.transaction(session_factory) as session:
        for _ in range(6):
            await jobs.submit(session, kind="probe", owner_id=owner, department_id=world.dept_a)

    async def nothing(job: RunningJob) -> None:
        raise AssertionError("only claimed here")

    runners = [
        Runner(session_factory, {"probe": nothing}, sealer(settings), name=f"runner-{n}")
        for n in range(12)
    ]
    claims = await asyncio.gather(*(runner.claim() for runner in runners))
    taken = [claim.id for claim in claims if claim is not None]
    assert len(taken) == len(set(taken)) == 6
    async with db.transaction(session_factory) as session:
        rows = (await session.exec(select(Job))).all()
    assert {row.lease_owner for row in rows} == {c.lease_owner for c in claims if c is not None}


@pytest.mark.parametrize(
    ("error", "state", "title"),
    [
        (JobFailed("Bad file", "Row 2 is wrong", [{"row": 2}]), "failed", "Bad file"),
        (InvalidField("display_name", "1-100 characters"), "failed", "Invalid field"),
        (RuntimeError("a bug"), "failed", "Internal error"),
        (ConnectionResetError("the database went away"), "queued", None),
    ],
    ids=["job-failed", "domain-error", "bug", "database-unreachable"],
)
async def test_a_handlers_failure_becomes_the_jobs_error_or_a_retry(
    world: World,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    error: Exception,
    state: str,
    title: str | None,
) -> None:
    (owner,) = await usernames(session_factory, "coord-a")
    async with db.transaction(session_factory) as session:
        job = await jobs.submit(session, kind="probe", owner_id=owner, department_id=None)

    async def failing(running: RunningJob) -> None:
        running.progress(1, 2)
        raise error

    runner = create_runner(settings, session_factory)
    probing = Runner(
        session_factory, {"probe": failing}, sealer(settings), retryable=runner.retryable
    )
    assert await probing.run_next()
    async with db.transaction(session_factory) as session:
        stored = await session.get(Job, job.id)
        assert stored is not None
    assert stored.state == state
    if title is None:
        assert stored.error is None and stored.lease_owner is None
    else:
        assert stored.error is not None and stored.error["title"] == title
        assert "a bug" not in str(stored.error)  # a bug's details go to the log only
        assert stored.finished_at is not None and stored.state == JobState.failed


async def test_the_sweep_deletes_jobs_finished_longer_ago_than_the_retention(
    client: AsyncTestClient[Litestar],
    world: World,
    session_factory: async_sessionmaker[AsyncSession],
    run_jobs: Callable[[], Awaitable[int]],
) -> None:
    old, recent, waiting = [await submit_import(client, world) for _ in range(3)]
    assert await run_jobs() == 3
    async with db.transaction(session_factory) as session:
        await session.exec(
            update(Job)  # type: ignore[call-overload]
            .where(Job.id == old.rsplit("/", 1)[1])
            .values(finished_at=utcnow() - timedelta(days=31))
        )
        await session.exec(
            update(Job)  # type: ignore[call-overload]
            .where(Job.id == waiting.rsplit("/", 1)[1])
            .values(state=JobState.queued, finished_at=utcnow() - timedelta(days=31))
        )
    await sweep_once(session_factory, job_retention_days=30)

    gone = await client.get(old, headers=world.headers["coord-a"])
    assert gone.status_code == 404
    # Finished too (the same member twice: it failed), but within the retention.
    assert (await job_answer(client, world, recent))["state"] == "failed"
    assert (await job_answer(client, world, waiting))["state"] == "queued"  # not finished
