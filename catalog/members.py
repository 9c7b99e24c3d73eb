"""A department's members: listing, adding one, and all-or-nothing CSV import.

An import is checked in the request (`check_import`), then hashed (`hash_rows`) and added
(`insert_members`) in a background job: see exchange/member_import.py."""

import asyncio
import csv
import io
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.departments import get_active_department
from catalog.errors import ImportRejected, InvalidField
from catalog.identity import (
    Identity,
    create_user,
    roles_of,
    validate_password,
    validate_roles,
    validate_username,
)
from catalog.models import Role, User, UserRole
from catalog.paging import Page, page_of
from catalog.passwords import hash_password
from catalog.text import unstorable_character

REQUIRED_COLUMNS = ("username", "display_name")
OPTIONAL_COLUMNS = ("roles", "password")
MAX_IMPORT_ROWS = 5000
HASH_BATCH = os.cpu_count() or 1


@dataclass(frozen=True)
class Member:
    user: User
    roles: frozenset[Role]
    # Set only when the service generated the password: shown once, never stored in clear.
    initial_password: str | None = None


async def list_members(
    session: AsyncSession, department_id: str, *, limit: int, after: str | None
) -> Page[Member]:
    query = (
        select(User)
        .where(User.department_id == department_id)
        .order_by(col(User.id))
        .limit(limit + 1)
    )
    if after:
        query = query.where(col(User.id) > after)
    users = (await session.exec(query)).all()
    page = page_of(users, limit, lambda user: user.id)
    roles = await roles_of(session, [user.id for user in page.items])
    return Page(items=[Member(user, roles[user.id]) for user in page.items], next=page.next)


async def add_member(
    session: AsyncSession,
    department_id: str,
    *,
    username: str,
    display_name: str,
    roles: list[str],
    password: str | None = None,
) -> Member:
    initial = None if password else generate_password()
    user = await create_user(
        session,
        username=username,
        display_name=display_name,
        password=password or initial or "",
        department_id=department_id,
        roles=roles,
    )
    return Member(user, validate_roles(roles, platform=False), initial)


def generate_password() -> str:
    return secrets.token_urlsafe(9)


def decode_csv(data: bytes) -> str:
    """UTF-8 (with or without BOM) or GBK, which Chinese office software exports."""
    for encoding in ("utf-8-sig", "gbk"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if unstorable_character(text):
            raise ImportRejected(
                [
                    {"row": row, "field": None, "error": f"contains the character {character}"}
                    for row, line in enumerate(text.split("\n"), start=1)
                    if (character := unstorable_character(line))
                ]
            )
        return text
    raise ImportRejected(
        [{"row": None, "field": None, "error": "the file is neither UTF-8 nor GBK text"}]
    )


@dataclass(frozen=True)
class ImportRow:
    line: int
    username: str
    display_name: str
    roles: frozenset[Role]
    password: str | None


async def check_import(
    session_factory: async_sessionmaker[AsyncSession],
    caller: Identity,
    department_id: str,
    data: bytes,
) -> list[ImportRow]:
    """The file's rows, if every one of them can be added; otherwise ImportRejected with a
    report of every problem by row. Quick enough for a request: parsing runs off the event
    loop, and no password is hashed here (`hash_rows` does that, in a job)."""
    rows, problems = await asyncio.to_thread(read_rows, data)
    async with session_factory() as session, session.begin():
        await get_active_department(session, caller, department_id)
        problems += await _taken(session, rows)
    if problems:
        raise ImportRejected(sorted(problems, key=lambda p: (p["row"] or 0, str(p["field"]))))
    return rows


async def _taken(session: AsyncSession, rows: list[ImportRow]) -> list[dict[str, object]]:
    lines = {row.username: row.line for row in rows}
    taken = await session.exec(select(User.username).where(col(User.username).in_(list(lines))))
    return [
        {"row": lines[username], "field": "username", "error": "already taken"}
        for username in taken.all()
    ]


@dataclass(frozen=True)
class HashedRow:
    row: ImportRow
    password_hash: str
    generated: str | None  # the password the service made up for the row, if it did


async def hash_rows(rows: list[ImportRow], progress: Callable[[int, int], None]) -> list[HashedRow]:
    """Hashes each row's password (generating those not given) in small batches, reporting
    the rows done after each. A batch is as wide as the hashing pool: a sign-in meanwhile
    waits for one batch, not for the whole file."""
    hashed: list[HashedRow] = []
    for start in range(0, len(rows), HASH_BATCH):
        batch = rows[start : start + HASH_BATCH]
        generated = [None if row.password else generate_password() for row in batch]
        hashes = await asyncio.gather(
            *(
                hash_password(row.password or made or "")
                for row, made in zip(batch, generated, strict=True)
            )
        )
        hashed += map(HashedRow, batch, hashes, generated)
        progress(len(hashed), len(rows))
    return hashed


async def insert_members(
    session: AsyncSession, department_id: str, rows: list[HashedRow]
) -> list[Member]:
    """Adds every row in the caller's transaction, or raises ImportRejected naming the rows
    whose usernames were taken since the file was checked."""
    if problems := await _taken(session, [hashed.row for hashed in rows]):
        raise ImportRejected(sorted(problems, key=lambda p: p["row"] or 0))
    users = [
        User(
            username=hashed.row.username,
            display_name=hashed.row.display_name,
            password_hash=hashed.password_hash,
            department_id=department_id,
        )
        for hashed in rows
    ]
    # One bulk insert; a name taken by a concurrent request after the check above fails the
    # unique index and rolls the whole file back.
    session.add_all(users)
    try:
        await session.flush()
    except IntegrityError:
        raise ImportRejected(
            [{"row": None, "field": "username", "error": "a username was taken meanwhile"}]
        ) from None
    session.add_all(
        UserRole(user_id=user.id, role=role)
        for user, hashed in zip(users, rows, strict=True)
        for role in hashed.row.roles
    )
    await session.flush()
    return [
        Member(user, hashed.row.roles, hashed.generated)
        for user, hashed in zip(users, rows, strict=True)
    ]


def read_rows(data: bytes) -> tuple[list[ImportRow], list[dict[str, object]]]:
    """The file's valid rows, and the problems of the others (CPU work: run off the loop)."""
    header, rows = _read_csv(decode_csv(data))
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    unknown = [name for name in header if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if missing or unknown:
        problems = [{"row": 1, "field": name, "error": "missing column"} for name in missing]
        problems += [{"row": 1, "field": name, "error": "unknown column"} for name in unknown]
        raise ImportRejected(problems)

    if not rows:
        raise ImportRejected([{"row": None, "field": None, "error": "the file has no members"}])
    if len(rows) > MAX_IMPORT_ROWS:
        raise ImportRejected(
            [{"row": None, "field": None, "error": f"more than {MAX_IMPORT_ROWS} rows"}]
        )

    problems: list[dict[str, object]] = []
    seen: dict[str, int] = {}
    parsed: list[ImportRow] = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        if None in row:
            problems.append({"row": line, "field": None, "error": "more cells than columns"})
            continue
        username = (row.get("username") or "").strip()
        display_name = (row.get("display_name") or "").strip()
        roles = [r.strip() for r in (row.get("roles") or "employee").replace(",", ";").split(";")]
        roles = [r for r in roles if r]
        password = (row.get("password") or "").strip() or None
        row_problems = _row_problems(line, username, display_name, roles, password)
        problems += row_problems
        if username in seen:
            problems.append(
                {"row": line, "field": "username", "error": f"duplicate of row {seen[username]}"}
            )
        seen.setdefault(username, line)
        if not row_problems:
            parsed.append(
                ImportRow(
                    line, username, display_name, validate_roles(roles, platform=False), password
                )
            )
    return parsed, problems


def _read_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the rows; a cell past csv's field size limit refuses the file."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in reader.fieldnames or []]
        reader.fieldnames = header
        return header, list(reader)
    # e.g. "field larger than field limit (131072)", raised before the line counts as read
    except csv.Error as error:
        raise ImportRejected(
            [{"row": reader.line_num + 1, "field": None, "error": f"unreadable CSV: {error}"}]
        ) from None


def _row_problems(
    line: int, username: str, display_name: str, roles: list[str], password: str | None
) -> list[dict[str, object]]:
    checks = [
        lambda: validate_username(username),
        lambda: _check_display_name(display_name),
        lambda: validate_roles(roles, platform=False),
    ]
    if password is not None:
        checks.append(lambda: validate_password(password))
    problems: list[dict[str, object]] = []
    for check in checks:
        try:
            check()
        except InvalidField as error:
            problems.append({"row": line, "field": error.field, "error": error.rule})
    return problems


def _check_display_name(display_name: str) -> None:
    if not display_name or len(display_name) > 100:
        raise InvalidField("display_name", "1-100 characters")
