"""A member import as a job: the request checks the file and stores it (`submit_import`); the
job checks it again, hashes the passwords with progress, and adds every member or none,
finishing the job in the same transaction (`run_import`). Hashing thousands of passwords is
minutes of CPU: it never runs in a request, and never on the event loop."""

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog import members
from catalog.identity import Identity, load_identity
from catalog.models import Role
from exchange import jobs
from exchange.models import Job

KIND = "member_import"


async def submit_import(
    session_factory: async_sessionmaker[AsyncSession],
    caller: Identity,
    department_id: str,
    data: bytes,
) -> Job:
    """The stored job, once the file is found fit; ImportRejected (every bad row) otherwise."""
    rows = await members.check_import(session_factory, caller, department_id, data)
    async with session_factory() as session, session.begin():
        return await jobs.submit(
            session,
            kind=KIND,
            owner_id=caller.user_id,
            department_id=department_id,
            input=data,
            total=len(rows),
        )


async def run_import(job: jobs.RunningJob) -> None:
    """The job's work. Its result names the members added; the passwords the service made
    up for them are its secret, handed to the owner once."""
    async with job.session_factory() as session:
        caller = await load_identity(session, job.owner_id)
    if caller is None or not caller.has(Role.coordinator, Role.admin):
        raise jobs.JobFailed("Not allowed", "The job's owner may no longer import members.")
    rows = await members.check_import(
        job.session_factory, caller, job.department_id or "", job.input or b""
    )
    job.progress(0, len(rows))
    hashed = await members.hash_rows(rows, job.progress)
    async with job.session_factory() as session, session.begin():
        added = await members.insert_members(session, job.department_id or "", hashed)
        await job.succeed(
            session,
            result={
                "imported": len(added),
                "members": [
                    {
                        "id": member.user.id,
                        "username": member.user.username,
                        "display_name": member.user.display_name,
                        "roles": sorted(role.value for role in member.roles),
                    }
                    for member in added
                ],
            },
            secret={
                "initial_passwords": {
                    member.user.username: member.initial_password
                    for member in added
                    if member.initial_password
                }
            },
        )
