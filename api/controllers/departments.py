"""Departments (registration 备案) and their members."""

from typing import Annotated, Any

import msgspec
import structlog
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import (
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
)
from litestar.params import FromPath, JSONBody, MultipartBody
from litestar.security.jwt import Token

from api.auth import optional_identity, requires
from api.controllers.jobs import ACCEPTED_HEADERS, JobOut, accepted
from api.jobs import wake_runners
from api.params import DB, DEFAULT_LIMIT, After, Limit
from api.ratelimit import application_limit, enforce
from catalog import departments, lockout, members
from catalog.departments import NewCoordinator, NewDepartment
from catalog.identity import Identity
from catalog.models import Department, DepartmentStatus, Role, utcnow
from exchange.member_import import submit_import

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
MAX_IMPORT_BYTES = 2 * 1024 * 1024
log = structlog.get_logger()


class CoordinatorIn(msgspec.Struct):
    username: Annotated[str, msgspec.Meta(min_length=3, max_length=64)]
    display_name: Short
    password: Annotated[str, msgspec.Meta(min_length=8, max_length=256)]


class DepartmentIn(msgspec.Struct):
    name: Name
    village_name: Name
    village_county: Short
    village_province: Short
    contact_name: Short
    contact_phone: Annotated[str, msgspec.Meta(min_length=3, max_length=40)]
    pickup_location: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    coordinator: CoordinatorIn | None = None


class DepartmentOut(msgspec.Struct):
    id: str
    name: str
    status: str
    village_name: str
    village_county: str
    village_province: str
    contact_name: str
    contact_phone: str
    pickup_location: str
    created_at: str
    status_changed_at: str

    @classmethod
    def of(cls, department: Department) -> "DepartmentOut":
        return cls(
            id=department.id,
            name=department.name,
            status=department.status,
            village_name=department.village_name,
            village_county=department.village_county,
            village_province=department.village_province,
            contact_name=department.contact_name,
            contact_phone=department.contact_phone,
            pickup_location=department.pickup_location,
            created_at=department.created_at.isoformat(),
            status_changed_at=department.status_changed_at.isoformat(),
        )


class DepartmentPage(msgspec.Struct):
    items: list[DepartmentOut]
    next: str | None


class MemberIn(msgspec.Struct):
    username: Annotated[str, msgspec.Meta(min_length=3, max_length=64)]
    display_name: Short
    roles: Annotated[list[str], msgspec.Meta(min_length=1, max_length=3)] = msgspec.field(
        default_factory=lambda: ["employee"]
    )
    password: Annotated[str, msgspec.Meta(min_length=8, max_length=256)] | None = None


class LockOut(msgspec.Struct):
    """A client refused for the account after repeated wrong passwords from it."""

    kind: Annotated[
        str,
        msgspec.Meta(
            description="`address`, or `device`: a browser that signed in to the account before"
        ),
    ]
    address: str | None
    failures: int
    locked_until: str


class MemberOut(msgspec.Struct):
    id: str
    username: str
    display_name: str
    roles: list[str]
    initial_password: str | None = None
    # Signing in from a client is refused after repeated wrong passwords from it, until time
    # or …/unlock lifts it; other clients, the member's own devices above all, sign in.
    locked: bool = False
    locks: list[LockOut] = msgspec.field(default_factory=list)

    @classmethod
    def of(cls, member: members.Member, locks: list[lockout.Lock] | None = None) -> "MemberOut":
        return cls(
            id=member.user.id,
            username=member.user.username,
            display_name=member.user.display_name,
            roles=sorted(role.value for role in member.roles),
            initial_password=member.initial_password,
            locked=bool(locks),
            locks=[
                LockOut(lock.kind, lock.address, lock.failures, lock.locked_until.isoformat())
                for lock in locks or []
            ],
        )


class MemberPage(msgspec.Struct):
    items: list[MemberOut]
    next: str | None


class ImportForm(msgspec.Struct):
    file: UploadFile


class DepartmentController(Controller):
    path = "/api/departments"
    tags = ["Departments"]

    @post(
        "/",
        status_code=201,
        exclude_from_auth=True,
        summary="Register a department (admin), or apply for one with its first coordinator",
    )
    async def register(
        self, request: Request[Any, Any, Any], db: DB, data: JSONBody[DepartmentIn]
    ) -> DepartmentOut:
        caller = await optional_identity(request)
        if caller is None and data.coordinator is None:
            raise NotAuthorizedException(
                "Sign in as an admin, or apply with a `coordinator` account for the department."
            )
        if caller is not None and not caller.has(Role.admin):
            raise PermissionDeniedException(
                "Only a platform admin registers departments when signed in."
            )
        if caller is None:  # each application hashes a password: limited per address
            await enforce(request, application_limit(request))
        details = NewDepartment(**{f: getattr(data, f) for f in NewDepartment.__dataclass_fields__})
        coordinator = (
            NewCoordinator(**msgspec.structs.asdict(data.coordinator)) if data.coordinator else None
        )
        department = await departments.register_department(
            db, details, actor_id=caller.user_id if caller else None, coordinator=coordinator
        )
        return DepartmentOut.of(department)

    @get(
        "/",
        guards=[requires(Role.admin, Role.auditor, Role.coordinator)],
        summary="Departments the caller may see",
    )
    async def list_departments(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        limit: Limit = DEFAULT_LIMIT,
        after: After = None,
    ) -> DepartmentPage:
        page = await departments.list_departments(db, request.user, limit=limit, after=after)
        return DepartmentPage([DepartmentOut.of(d) for d in page.items], page.next)

    @get("/{department_id:str}", guards=[requires(Role.admin, Role.auditor, Role.coordinator)])
    async def get_department(
        self, request: Request[Identity, Token, Any], db: DB, department_id: FromPath[str]
    ) -> DepartmentOut:
        return DepartmentOut.of(await departments.get_department(db, request.user, department_id))

    @post("/{department_id:str}/approve", status_code=200, guards=[requires(Role.admin)])
    async def approve(
        self, request: Request[Identity, Token, Any], db: DB, department_id: FromPath[str]
    ) -> DepartmentOut:
        department = await departments.change_status(
            db, request.user, department_id, DepartmentStatus.approved
        )
        return DepartmentOut.of(department)

    @post("/{department_id:str}/suspend", status_code=200, guards=[requires(Role.admin)])
    async def suspend(
        self, request: Request[Identity, Token, Any], db: DB, department_id: FromPath[str]
    ) -> DepartmentOut:
        department = await departments.change_status(
            db, request.user, department_id, DepartmentStatus.suspended
        )
        return DepartmentOut.of(department)

    @get("/{department_id:str}/members", guards=[requires(Role.coordinator, Role.admin)])
    async def list_members(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        limit: Limit = DEFAULT_LIMIT,
        after: After = None,
    ) -> MemberPage:
        await departments.get_department(db, request.user, department_id)
        page = await members.list_members(db, department_id, limit=limit, after=after)
        locks = await lockout.locks_of(db, [m.user.id for m in page.items], utcnow())
        return MemberPage([MemberOut.of(m, locks.get(m.user.id)) for m in page.items], page.next)

    @post(
        "/{department_id:str}/members",
        status_code=201,
        guards=[requires(Role.coordinator, Role.admin)],
        summary="Add one member; a generated password is shown once when none is given",
    )
    async def add_member(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        data: JSONBody[MemberIn],
    ) -> MemberOut:
        await departments.get_active_department(db, request.user, department_id)
        member = await members.add_member(
            db,
            department_id,
            username=data.username,
            display_name=data.display_name,
            roles=data.roles,
            password=data.password,
        )
        return MemberOut.of(member)

    @post(
        "/{department_id:str}/members/import",
        status_code=202,
        guards=[requires(Role.coordinator, Role.admin)],
        request_max_body_size=MAX_IMPORT_BYTES,
        response_headers=ACCEPTED_HEADERS,
        summary="CSV of members (username, display_name[, roles][, password]); all or nothing",
        description="UTF-8 (with or without BOM) or GBK. Roles are separated by ';'. "
        "A file with any bad row imports nothing and answers 422 with every problem by row. "
        "A good file answers 202 with a job (`GET /api/jobs/{id}`) that hashes the passwords "
        "and adds the members, every one or none; its result lists them, and its first answer "
        "after success carries the generated passwords (`initial_passwords`).",
    )
    async def import_members(
        self,
        request: Request[Identity, Token, Any],
        department_id: FromPath[str],
        data: MultipartBody[ImportForm],
    ) -> Response[JobOut]:
        job = await submit_import(
            request.app.state.session_factory, request.user, department_id, await data.file.read()
        )
        wake_runners(request)
        return accepted(job)

    @post(
        "/{department_id:str}/members/{user_id:str}/unlock",
        status_code=204,
        guards=[requires(Role.coordinator, Role.admin)],
        summary="Lift a member's sign-in lockout after repeated wrong passwords",
    )
    async def unlock_member(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        user_id: FromPath[str],
    ) -> None:
        await departments.get_department(db, request.user, department_id)
        user = await lockout.unlock(db, request.user, user_id)
        if user.department_id != department_id:
            raise NotFoundException(f"No member {user_id!r} in this department.")
        log.info("sign-in lockout lifted", user_id=user_id, by=request.user.user_id)
