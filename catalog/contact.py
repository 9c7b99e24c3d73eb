"""How a user is reached: the e-mail address they gave, whether they opted out, and the
language messages to them are written in (also their pages' language, after a choice made
on the page itself)."""

import re
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from catalog.errors import InvalidField, NotFound
from catalog.models import User

# An address as people type it: no spaces, one @, a dot in the domain. Whether it exists only
# the receiving server can tell.
ADDRESS = re.compile(
    r"^[^@\s<>\"',;:()\[\]\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\.[A-Za-z]{2,63}$"
)
MAX_ADDRESS = 254


@dataclass(frozen=True)
class Contact:
    email: str | None
    email_opt_out: bool
    language: str | None


def check_address(address: str) -> str:
    address = address.strip()
    if len(address) > MAX_ADDRESS or not ADDRESS.match(address):
        raise InvalidField("email", "an e-mail address such as name@example.cn")
    return address


async def contact_of(session: AsyncSession, user_id: str) -> Contact:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("Your account no longer exists.")
    return Contact(user.email, user.email_opt_out, user.language)


async def set_contact(
    session: AsyncSession,
    user_id: str,
    *,
    email: str | None,
    email_opt_out: bool,
    language: str | None,
) -> Contact:
    """Set the address (None or "" removes it), the opt-out and the language (None: the
    service's default) together; the caller checks the language is one the service speaks."""
    user = await session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound("Your account no longer exists.")
    user.email = check_address(email) if email and email.strip() else None
    user.email_opt_out = email_opt_out
    user.language = language
    session.add(user)
    await session.flush()
    return Contact(user.email, user.email_opt_out, user.language)
