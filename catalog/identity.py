"""Users, their roles and what a signed-in caller may see and touch."""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.errors import Conflict, InvalidField
from catalog.models import Department, DepartmentStatus, RevokedToken, Role, User, UserRole, utcnow
from catalog.passwords import hash_password

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256
PLATFORM_ROLES = frozenset({Role.admin, Role.auditor})
DEPARTMENT_ROLES = frozenset({Role.employee, Role.coordinator, Role.auditor})


@dataclass(frozen=True)
class Identity:
    """The signed-in caller: who, in which department (None: platform-wide), with which roles."""

    user_id: str
    username: str
    display_name: str
    department_id: str | None
    department_status: DepartmentStatus | None
    roles: frozenset[Role]
    language: str | None = None

    @property
    def is_platform(self) -> bool:
        return self.department_id is None

    def has(self, *roles: Role) -> bool:
        return not self.roles.isdisjoint(roles)

    def may_see_department(self, department_id: str) -> bool:
        return self.is_platform or self.department_id == department_id


def validate_username(username: str) -> None:
    if not USERNAME_PATTERN.match(username):
        raise InvalidField(
            "username",
            "3-64 characters: letters, digits, '.', '_' or '-', starting with one of the first two",
        )


def validate_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidField(
            "password", f"between {MIN_PASSWORD_LENGTH} and {MAX_PASSWORD_LENGTH} characters"
        )


def validate_roles(roles: Iterable[str], *, platform: bool) -> frozenset[Role]:
    allowed = PLATFORM_ROLES if platform else DEPARTMENT_ROLES
    parsed: set[Role] = set()
    for name in roles:
        try:
            role = Role(name)
        except ValueError:
            raise InvalidField("roles", f"unknown role {name!r}") from None
        if role not in allowed:
            scope = "platform-wide" if platform else "department"
            raise InvalidField("roles", f"{role.value} is not a {scope} role")
        parsed.add(role)
    if not parsed:
        raise InvalidField("roles", "at least one role")
    return frozenset(parsed)


async def username_taken(session: AsyncSession, username: str) -> bool:
    found = await session.exec(select(User.id).where(User.username == username))
    return found.first() is not None


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    display_name: str,
    password: str,
    department_id: str | None,
    roles: Iterable[str],
) -> User:
    validate_username(username)
    validate_password(password)
    validate_display_name(display_name)
    parsed_roles = validate_roles(roles, platform=department_id is None)
    return await insert_user(
        session,
        username=username,
        display_name=display_name,
        password_hash=await hash_password(password),
        department_id=department_id,
        roles=parsed_roles,
    )


def validate_display_name(display_name: str) -> None:
    if not display_name.strip() or len(display_name) > 100:
        raise InvalidField("display_name", "1-100 characters")


async def insert_user(
    session: AsyncSession,
    *,
    username: str,
    display_name: str,
    password_hash: str,
    department_id: str | None,
    roles: frozenset[Role],
) -> User:
    """Adds a user whose fields were validated and whose password is already hashed."""
    if await username_taken(session, username):
        raise Conflict(f"The username {username!r} is already taken.")
    user = User(
        username=username,
        display_name=display_name.strip(),
        password_hash=password_hash,
        department_id=department_id,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        # A concurrent request took the name between our check and the insert.
        raise Conflict(f"The username {username!r} is already taken.") from None
    session.add_all(UserRole(user_id=user.id, role=role) for role in roles)
    await session.flush()
    return user


async def set_roles(session: AsyncSession, user: User, roles: Iterable[str]) -> None:
    parsed = validate_roles(roles, platform=user.department_id is None)
    await session.exec(delete(UserRole).where(UserRole.user_id == user.id))
    session.add_all(UserRole(user_id=user.id, role=role) for role in parsed)
    await session.flush()


async def roles_of(session: AsyncSession, user_ids: list[str]) -> dict[str, frozenset[Role]]:
    rows = await session.exec(
        select(UserRole.user_id, UserRole.role).where(col(UserRole.user_id).in_(user_ids))
    )
    found: dict[str, set[Role]] = {user_id: set() for user_id in user_ids}
    for user_id, role in rows:
        found[user_id].add(Role(role))
    return {user_id: frozenset(roles) for user_id, roles in found.items()}


async def load_identity(session: AsyncSession, user_id: str) -> Identity | None:
    found = await session.exec(
        select(User, Department.status)
        .outerjoin(Department, Department.id == User.department_id)
        .where(User.id == user_id)
    )
    row = found.first()
    if row is None or not row[0].is_active:
        return None
    user, status = row
    roles = (await roles_of(session, [user.id]))[user.id]
    return Identity(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        department_id=user.department_id,
        department_status=DepartmentStatus(status) if status else None,
        roles=roles,
        language=user.language,
    )


@dataclass(frozen=True)
class Caller:
    """What a signed-in request needs to know of its token: whether it is revoked, and who its
    subject is (None: the user is gone or cannot sign in)."""

    revoked: bool
    identity: Identity | None


# Always one row, whether or not the user exists, so that revocation is answered either way.
_CALLER = """
SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $1) AS revoked,
       u.id, u.username, u.display_name, u.department_id, u.is_active, u.language,
       d.status AS department_status,
       ARRAY(SELECT r.role FROM user_roles AS r WHERE r.user_id = u.id) AS roles
FROM (VALUES (1)) AS caller
LEFT JOIN users AS u ON u.id = $2
LEFT JOIN departments AS d ON d.id = u.department_id
"""


async def load_caller(conn: AsyncConnection, jti: str, user_id: str) -> Caller:
    """The caller behind token `jti` of user `user_id`.

    On PostgreSQL one statement on the driver's connection (asyncpg prepares it once per
    connection), since this runs for every token the identity cache has not seen lately; on
    SQLite the ORM's `is_revoked` and `load_identity`. Both give the same answers.
    """
    if conn.dialect.name != "postgresql":
        async with AsyncSession(bind=conn) as session:
            if await is_revoked(session, jti):
                return Caller(revoked=True, identity=None)
            return Caller(revoked=False, identity=await load_identity(session, user_id))
    driver = (await conn.get_raw_connection()).driver_connection
    row = await driver.fetchrow(_CALLER, jti, user_id)
    if row["revoked"]:
        return Caller(revoked=True, identity=None)
    if row["id"] is None or not row["is_active"]:
        return Caller(revoked=False, identity=None)
    status = row["department_status"]
    return Caller(
        revoked=False,
        identity=Identity(
            user_id=row["id"],
            username=row["username"],
            display_name=row["display_name"],
            department_id=row["department_id"],
            department_status=DepartmentStatus(status) if status else None,
            roles=frozenset(Role(role) for role in row["roles"]),
            language=row["language"],
        ),
    )


async def revoke_token(session: AsyncSession, jti: str, expires_at: datetime) -> None:
    if await is_revoked(session, jti):
        return
    session.add(RevokedToken(jti=jti, expires_at=expires_at))
    # Tokens past their expiry are refused anyway; forget them so the table stays small.
    await session.exec(delete(RevokedToken).where(RevokedToken.expires_at < utcnow()))
    await session.flush()


async def is_revoked(session: AsyncSession, jti: str) -> bool:
    found = await session.exec(select(RevokedToken.jti).where(RevokedToken.jti == jti))
    return found.first() is not None
