"""Jobs: the state, progress and outcome of work the service does in the background."""

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.datastructures import ResponseHeader
from litestar.params import FromPath
from litestar.security.jwt import Token

from api.controllers.refusals import refusals
from api.jobs import sealer
from api.params import DB
from catalog.identity import Identity
from exchange import jobs
from exchange.models import Job, JobState


class Progress(msgspec.Struct):
    done: int
    total: int  # 0 while not known yet


class JobError(msgspec.Struct):
    """Why the job failed, as a problem document would say it; `errors` names the rows or
    fields at fault."""

    title: str
    detail: str
    code: str | None = None
    errors: list[dict[str, object]] | None = None


class JobOut(msgspec.Struct):
    id: str
    kind: str
    state: str  # queued, running, succeeded or failed
    progress: Progress
    result: dict[str, Any] | None
    error: JobError | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    url: str

    @classmethod
    def of(cls, job: Job, secret: dict[str, Any] | None = None) -> "JobOut":
        return cls(
            id=job.id,
            kind=job.kind,
            state=job.state,
            progress=Progress(job.progress_done, job.progress_total),
            result={**job.result, **(secret or {})} if job.result is not None else None,
            error=msgspec.convert(job.error, JobError) if job.error else None,
            created_at=job.created_at.isoformat(),
            started_at=job.started_at.isoformat() if job.started_at else None,
            finished_at=job.finished_at.isoformat() if job.finished_at else None,
            url=job_url(job),
        )


def job_url(job: Job) -> str:
    return f"/api/jobs/{job.id}"


def accepted(job: Job) -> Response[JobOut]:
    """202 for a request whose work goes on as `job`, pointing at where to follow it."""
    return Response(JobOut.of(job), status_code=202, headers={"Location": job_url(job)})


ACCEPTED_HEADERS = [
    ResponseHeader(name="Location", description="The job to follow", documentation_only=True)
]


class JobController(Controller):
    path = "/api/jobs"
    tags = ["Jobs"]

    @get(
        "/{job_id:str}",
        summary="A job of the caller's: state, progress, and its result or error",
        description="Poll until `state` is `succeeded` (then `result`) or `failed` (then "
        "`error`, naming the rows at fault). Secrets of a result (a member import's "
        "`initial_passwords`, by username) are in the first answer after it succeeded only.",
        responses=refusals(_404="No such job of the caller's"),
    )
    async def get_job(
        self, request: Request[Identity, Token, Any], db: DB, job_id: FromPath[str]
    ) -> JobOut:
        job = await jobs.get_own_job(db, job_id, request.user.user_id)
        secret = {}
        if job.state == JobState.succeeded:
            secret = await jobs.deliver_secret(db, job, sealer(request.app.state.settings))
        return JobOut.of(job, secret)
