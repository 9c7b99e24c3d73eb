"""The demo data set `exchange demo` creates, idempotently, so a newcomer can walk every journey."""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.db import transaction
from catalog.departments import NewDepartment, register_department
from catalog.identity import create_user
from catalog.models import Department, DepartmentStatus, Role, User

DEMO_PASSWORD = "demo-pass"


@dataclass(frozen=True)
class DemoDepartment:
    key: str  # "a" or "b": the suffix of its accounts' usernames
    details: NewDepartment


DEMO_DEPARTMENTS = [
    DemoDepartment(
        "a",
        NewDepartment(
            name="示范机关事务局",
            village_name="石门村",
            village_county="平江县",
            village_province="湖南省",
            contact_name="李协调",
            contact_phone="0731-8000-0001",
            pickup_location="机关大楼一层收发室",
        ),
    ),
    DemoDepartment(
        "b",
        NewDepartment(
            name="示范生态环境厅",
            village_name="坪上村",
            village_county="紫云县",
            village_province="贵州省",
            contact_name="王协调",
            contact_phone="0851-8000-0002",
            pickup_location="办公楼二层工会活动室",
        ),
    ),
]


@dataclass(frozen=True)
class DemoAccount:
    username: str
    roles: str
    department: str


async def _ensure_user(
    session: AsyncSession,
    username: str,
    display_name: str,
    department_id: str | None,
    roles: list[Role],
) -> None:
    if (await session.exec(select(User.id).where(User.username == username))).first():
        return
    await create_user(
        session,
        username=username,
        display_name=display_name,
        password=DEMO_PASSWORD,
        department_id=department_id,
        roles=roles,
    )


async def seed_demo(session_factory: async_sessionmaker[AsyncSession]) -> list[DemoAccount]:
    """Creates what is missing of the demo data set and returns its accounts."""
    accounts = [DemoAccount("admin", "admin", "-"), DemoAccount("auditor", "auditor", "-")]
    async with transaction(session_factory) as session:
        await _ensure_user(session, "admin", "平台管理员", None, [Role.admin])
        await _ensure_user(session, "auditor", "平台审计", None, [Role.auditor])
        for demo in DEMO_DEPARTMENTS:
            department = (
                await session.exec(select(Department).where(Department.name == demo.details.name))
            ).first()
            if department is None:
                department = await register_department(session, demo.details, actor_id=None)
                department.status = DepartmentStatus.approved
                session.add(department)
                await session.flush()
            coordinator = f"coord-{demo.key}"
            await _ensure_user(
                session,
                coordinator,
                f"协调员{demo.key.upper()}",
                department.id,
                [Role.coordinator, Role.employee],
            )
            accounts.append(DemoAccount(coordinator, "coordinator, employee", department.name))
            for n in range(1, 6):
                username = f"emp-{demo.key}{n}"
                await _ensure_user(
                    session, username, f"职工{demo.key.upper()}{n}", department.id, [Role.employee]
                )
                accounts.append(DemoAccount(username, "employee", department.name))
    return accounts
