"""Jobs: work that takes longer than a request should, stored in the database and run in the
background, with progress, a result, or an error naming what was wrong.

A request stores the job (`submit`) and answers at once; a runner in any process claims it,
does the work and finishes it. Exactly one runner works on a job at a time: it claims the job
with a lease (`lease_owner`, `lease_until`), on PostgreSQL with FOR UPDATE SKIP LOCKED so that
runners never wait on each other (on SQLite a write transaction holds the whole database), and
renews the lease while it works. A job whose runner died is claimed again once its lease has
run out, and its work starts over: a job writes its effects and its success in one transaction
(`RunningJob.succeed`), fenced by the lease, so a half-done attempt left nothing behind and a
runner that lost its lease cannot finish a job another one took over. A job interrupted
`max_attempts` times fails, saying so, rather than crash runners forever.

Kinds of work are handlers by name (`Handler`), supplied by whoever runs the runner (api/jobs.py).
"""

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import delete, or_, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.errors import CatalogError
from catalog.models import utcnow
from exchange.errors import ExchangeError, NotFound
from exchange.models import Job, JobState

log = structlog.get_logger()


class JobFailed(Exception):
    """Raised by a handler: the job fails with this problem (title, detail, rows at fault)."""

    def __init__(self, title: str, detail: str, errors: list[dict[str, object]] | None = None):
        super().__init__(detail)
        self.problem: dict[str, object] = {"title": title, "detail": detail}
        if errors:
            self.problem["errors"] = errors


class LeaseLost(Exception):
    """This runner's lease ran out and another runner may have the job: stop, change nothing."""


def problem_of(error: Exception) -> dict[str, object]:
    """A domain error as the job's error: the same fields its problem document would carry."""
    if isinstance(error, JobFailed):
        return error.problem
    problem: dict[str, object] = {
        "title": getattr(error, "title", "Failed"),
        "detail": str(getattr(error, "detail", error)),
        "code": type(error).__name__,
    }
    if rows := getattr(error, "errors", None):
        problem["errors"] = rows
    elif field_name := getattr(error, "field", None):
        problem["errors"] = [{"field": field_name, "rule": getattr(error, "rule", "")}]
    return problem


class Sealer:
    """Encrypts a result's secrets (generated passwords) with a key that is not in the
    database, so neither a dump nor a backup of it holds them in clear."""

    def __init__(self, secret: str) -> None:
        key = hmac.new(secret.encode(), b"job result secrets", hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, value: dict[str, object]) -> bytes:
        return self._fernet.encrypt(json.dumps(value, ensure_ascii=False).encode())

    def open(self, sealed: bytes) -> dict[str, object] | None:
        """None when it cannot be opened (the JWT secret it was sealed with has changed)."""
        try:
            return json.loads(self._fernet.decrypt(sealed))
        except InvalidToken:
            return None


# --- storing and reading jobs ---------------------------------------------------------------


async def submit(
    session: AsyncSession,
    *,
    kind: str,
    owner_id: str,
    department_id: str | None,
    input: bytes | None = None,
    total: int = 0,
) -> Job:
    """Stores a job for a runner to take up; `total` is its amount of work, when known."""
    job = Job(
        kind=kind,
        owner_id=owner_id,
        department_id=department_id,
        input=input,
        progress_total=total,
    )
    session.add(job)
    await session.flush()
    log.info("job submitted", job_id=job.id, kind=kind, owner_id=owner_id)
    return job


async def get_own_job(session: AsyncSession, job_id: str, owner_id: str) -> Job:
    """The caller's job; anyone else's is indistinguishable from a missing one."""
    job = await session.get(Job, job_id)
    if job is None or job.owner_id != owner_id:
        raise NotFound(f"No job {job_id!r}.")
    return job


async def deliver_secret(session: AsyncSession, job: Job, sealer: Sealer) -> dict[str, object]:
    """The secrets of a finished job's result, once: they are erased as they are read."""
    if job.secret is None:
        return {}
    opened = sealer.open(job.secret)
    await session.exec(update(Job).where(col(Job.id) == job.id).values(secret=None))  # type: ignore[call-overload]
    job.secret = None
    return opened or {}


async def latest_jobs(
    session: AsyncSession, owner_id: str, kind: str, *, limit: int = 1
) -> list[Job]:
    """The owner's most recent jobs of a kind, newest first."""
    rows = await session.exec(
        select(Job)
        .where(col(Job.owner_id) == owner_id, col(Job.kind) == kind)
        .order_by(col(Job.id).desc())
        .limit(limit)
    )
    return list(rows.all())


async def delete_finished(session: AsyncSession, finished_before: datetime) -> int:
    """Deletes the jobs that succeeded or failed before `finished_before`, their results and
    any secret never fetched included; answers how many."""
    deleted = await session.exec(
        delete(Job).where(  # type: ignore[call-overload]
            col(Job.state).in_([JobState.succeeded, JobState.failed]),
            col(Job.finished_at) < finished_before,
        )
    )
    return deleted.rowcount


# --- running them -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunnerSettings:
    lease_seconds: float = 30.0
    max_attempts: int = 3

    @property
    def heartbeat_seconds(self) -> float:
        # Often enough for a progress bar, and well within the lease.
        return min(1.0, self.lease_seconds / 3)


@dataclass
class RunningJob:
    """What a handler gets: the job as claimed, where to report progress, and how to finish."""

    id: str
    kind: str
    owner_id: str
    department_id: str | None
    input: bytes | None
    session_factory: async_sessionmaker[AsyncSession]
    lease_owner: str
    sealer: Sealer
    done: int = 0
    total: int = 0
    lost: bool = False
    finished: bool = False

    def progress(self, done: int, total: int | None = None) -> None:
        """Records progress (saved with the next heartbeat); raises LeaseLost when the lease
        is gone, so a handler stops soon after another runner took the job over."""
        if self.lost:
            raise LeaseLost(self.id)
        self.done = done
        if total is not None:
            self.total = total

    async def succeed(
        self,
        session: AsyncSession | None,
        result: dict[str, object],
        secret: dict[str, object] | None = None,
    ) -> None:
        """Marks the job succeeded inside the handler's own transaction (`session`), so its
        effects and its success commit together, or in a transaction of its own (None).
        Raises LeaseLost, rolling the handler's transaction back, if the lease is gone."""
        values = {
            "state": JobState.succeeded,
            "result": result,
            "secret": self.sealer.seal(secret) if secret else None,
            "progress_done": max(self.done, self.total),
            "progress_total": self.total,
        }
        if session is None:
            async with self.session_factory() as own, own.begin():
                await self._finish(own, values)
        else:
            await self._finish(session, values)

    async def fail(self, problem: dict[str, object]) -> None:
        async with self.session_factory() as session, session.begin():
            await self._finish(session, {"state": JobState.failed, "error": problem})

    async def _finish(self, session: AsyncSession, values: dict[str, Any]) -> None:
        finished = await session.exec(
            update(Job)  # type: ignore[call-overload]
            .where(*self.holding())
            .values(
                **values,
                input=None,
                finished_at=utcnow(),
                lease_owner=None,
                lease_until=None,
            )
        )
        if finished.rowcount != 1:
            raise LeaseLost(self.id)
        self.finished = True

    def holding(self) -> tuple[Any, ...]:
        """The job's row, only while this runner's lease on it holds."""
        return (
            col(Job.id) == self.id,
            col(Job.lease_owner) == self.lease_owner,
            col(Job.state) == JobState.running,
        )


Handler = Callable[[RunningJob], Awaitable[None]]


def runner_name() -> str:
    """Who holds a lease: this host and process, and a nonce in case a pid is reused."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class Runner:
    """Claims jobs of the kinds it has handlers for and runs them, one at a time."""

    session_factory: async_sessionmaker[AsyncSession]
    handlers: Mapping[str, Handler]
    sealer: Sealer
    settings: RunnerSettings = field(default_factory=RunnerSettings)
    # Errors that mean "not now" (the database is unreachable): the job is left to run again.
    retryable: Callable[[BaseException], bool] = lambda error: False
    name: str = field(default_factory=runner_name)

    async def run_next(self) -> bool:
        """Claims one job and runs it to its end; False when there was none to claim."""
        running = await self.claim()
        if running is None:
            return False
        await self.run(running)
        return True

    async def run(self, running: RunningJob) -> None:
        """Runs a claimed job to its end, renewing its lease meanwhile."""
        heartbeat = asyncio.create_task(self._heartbeat(running), name=f"job-{running.id}")
        try:
            await self._run(running)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def claim(self) -> RunningJob | None:
        """Takes the oldest job waiting, or one whose runner's lease ran out, and leases it."""
        now = utcnow()
        async with self.session_factory() as session, session.begin():
            while True:
                job = (
                    await session.exec(
                        select(Job)
                        .where(
                            col(Job.kind).in_(list(self.handlers)),
                            or_(
                                col(Job.state) == JobState.queued,
                                (col(Job.state) == JobState.running) & (col(Job.lease_until) < now),
                            ),
                        )
                        .order_by(col(Job.id))
                        .limit(1)
                        .with_for_update(skip_locked=True)
                    )
                ).first()
                if job is None:
                    return None
                if job.attempts < self.settings.max_attempts:
                    break
                job.state = JobState.failed
                job.error = {
                    "title": "Interrupted",
                    "detail": f"The job was interrupted {job.attempts} times and was given up; "
                    "nothing of it was saved. Submit it again.",
                }
                job.input = None
                job.finished_at = now
                session.add(job)
                await session.flush()
                log.warning("job given up", job_id=job.id, attempts=job.attempts)
            if job.state == JobState.running:
                log.warning("job taken over", job_id=job.id, from_runner=job.lease_owner)
            job.state = JobState.running
            job.lease_owner = self.name
            job.lease_until = now + timedelta(seconds=self.settings.lease_seconds)
            job.attempts += 1
            job.started_at = job.started_at or now
            session.add(job)
            await session.flush()
        log.info("job started", job_id=job.id, kind=job.kind, attempt=job.attempts)
        return RunningJob(
            id=job.id,
            kind=job.kind,
            owner_id=job.owner_id,
            department_id=job.department_id,
            input=job.input,
            session_factory=self.session_factory,
            lease_owner=self.name,
            sealer=self.sealer,
            total=job.progress_total,
        )

    async def _run(self, running: RunningJob) -> None:
        try:
            await self.handlers[running.kind](running)
            if not running.finished:
                raise RuntimeError(f"the {running.kind} handler returned without finishing")
            log.info("job succeeded", job_id=running.id)
        except LeaseLost:
            log.warning("job lease lost; another runner has it", job_id=running.id)
        except asyncio.CancelledError:
            # The process is stopping: hand the job back so that the next runner starts it
            # at once instead of waiting out the lease.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._release(running, handed_back=True))
            raise
        except (JobFailed, CatalogError, ExchangeError) as error:
            log.info("job failed", job_id=running.id, error=str(error))
            await self._fail(running, problem_of(error))
        except Exception as error:
            if self.retryable(error):
                log.warning("job interrupted; it will run again", job_id=running.id)
                with contextlib.suppress(Exception):
                    await self._release(running)
                return
            log.exception("job failed unexpectedly", job_id=running.id)
            await self._fail(
                running,
                {
                    "title": "Internal error",
                    "detail": "Something went wrong on our side; it has been logged. "
                    "Nothing of the job was saved.",
                },
            )

    async def _fail(self, running: RunningJob, problem: dict[str, object]) -> None:
        with contextlib.suppress(LeaseLost):
            await running.fail(problem)

    async def _release(self, running: RunningJob, handed_back: bool = False) -> None:
        """Queues the job again; one handed back by a stopping process (a deploy, not a fault
        of the job) gets its attempt back."""
        given_back = {"attempts": Job.attempts - 1} if handed_back else {}
        async with self.session_factory() as session, session.begin():
            await session.exec(
                update(Job)  # type: ignore[call-overload]
                .where(*running.holding())
                .values(state=JobState.queued, lease_owner=None, lease_until=None, **given_back)
            )

    async def _heartbeat(self, running: RunningJob) -> None:
        """Renews the lease and saves the progress until the job ends or the lease is lost."""
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                async with self.session_factory() as session, session.begin():
                    renewed = await session.exec(
                        update(Job)  # type: ignore[call-overload]
                        .where(*running.holding())
                        .values(
                            lease_until=utcnow() + timedelta(seconds=self.settings.lease_seconds),
                            progress_done=running.done,
                            progress_total=running.total,
                        )
                    )
            except Exception as error:  # keep trying while the lease lasts
                log.warning("job heartbeat failed", job_id=running.id, error=str(error))
                continue
            if renewed.rowcount != 1:
                running.lost = not running.finished
                return
