"""Departments and their registration (备案): pending → approved → suspended (→ approved)."""

from dataclasses import dataclass

import structlog
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.errors import Conflict, DepartmentNotApproved, InvalidStatusChange, NotFound
from catalog.identity import (
    Identity,
    insert_user,
    validate_display_name,
    validate_password,
    validate_username,
)
from catalog.models import Department, DepartmentStatus, Role, utcnow
from catalog.paging import Page, page_of
from catalog.passwords import hash_password

log = structlog.get_logger()

ALLOWED_CHANGES = {
    (DepartmentStatus.pending, DepartmentStatus.approved),
    (DepartmentStatus.pending, DepartmentStatus.suspended),
    (DepartmentStatus.approved, DepartmentStatus.suspended),
    (DepartmentStatus.suspended, DepartmentStatus.approved),
}


@dataclass(frozen=True)
class NewDepartment:
    name: str
    village_name: str
    village_county: str
    village_province: str
    contact_name: str
    contact_phone: str
    pickup_location: str


@dataclass(frozen=True)
class NewCoordinator:
    username: str
    display_name: str
    password: str


async def register_department(
    session: AsyncSession,
    details: NewDepartment,
    *,
    actor_id: str | None,
    coordinator: NewCoordinator | None = None,
) -> Department:
    """A department starts `pending`; its first coordinator, if given, is created with it.

    Anyone may apply, so the answer must not reveal whether a username exists: when the
    coordinator's username is taken the application is accepted all the same, without the
    account, and the operator sees at review that it has no coordinator (and suspends it).
    """
    password_hash = None
    if coordinator is not None:
        validate_username(coordinator.username)
        validate_password(coordinator.password)
        validate_display_name(coordinator.display_name)
        # Hashed before the first query: on SQLite a transaction holds the write lock.
        password_hash = await hash_password(coordinator.password)
    found = await session.exec(select(Department.id).where(Department.name == details.name))
    if found.first() is not None:
        raise Conflict(f"A department named {details.name!r} is already registered.")
    department = Department(**details.__dict__, created_by=actor_id, status_changed_by=actor_id)
    session.add(department)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"A department named {details.name!r} is already registered.") from None
    if coordinator is not None and password_hash is not None:
        try:
            async with session.begin_nested():
                await insert_user(
                    session,
                    username=coordinator.username,
                    display_name=coordinator.display_name,
                    password_hash=password_hash,
                    department_id=department.id,
                    roles=frozenset({Role.coordinator, Role.employee}),
                )
        except Conflict:
            log.warning(
                "department application names a taken username",
                department_id=department.id,
                username=coordinator.username,
            )
    return department


async def get_department(session: AsyncSession, caller: Identity, department_id: str) -> Department:
    """Another department's row is indistinguishable from a missing one."""
    department = await session.get(Department, department_id)
    if department is None or not caller.may_see_department(department_id):
        raise NotFound(f"No department {department_id!r}.")
    return department


async def get_active_department(
    session: AsyncSession, caller: Identity, department_id: str
) -> Department:
    """The department, which must be approved before its members may act in it."""
    department = await get_department(session, caller, department_id)
    if department.status != DepartmentStatus.approved:
        raise DepartmentNotApproved(
            f"The department {department.name!r} is {department.status}; it must be approved first."
        )
    return department


async def list_departments(
    session: AsyncSession, caller: Identity, *, limit: int, after: str | None
) -> Page[Department]:
    query = select(Department).order_by(col(Department.id)).limit(limit + 1)
    if not caller.is_platform:
        query = query.where(Department.id == caller.department_id)
    if after:
        query = query.where(col(Department.id) > after)
    rows = (await session.exec(query)).all()
    return page_of(rows, limit, lambda department: department.id)


async def change_status(
    session: AsyncSession, caller: Identity, department_id: str, status: DepartmentStatus
) -> Department:
    department = await session.get(Department, department_id, with_for_update=True)
    if department is None:
        raise NotFound(f"No department {department_id!r}.")
    if (department.status, status) not in ALLOWED_CHANGES:
        raise InvalidStatusChange(
            f"The department is {department.status}; it cannot become {status}."
        )
    department.status = status
    department.status_changed_at = utcnow()
    department.status_changed_by = caller.user_id
    session.add(department)
    await session.flush()
    return department
