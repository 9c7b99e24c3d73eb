"""Who may take part in the exchange."""

from catalog.errors import DepartmentNotApproved
from catalog.identity import Identity
from catalog.models import DepartmentStatus, Role
from exchange.errors import NotAMember, NotFound


def department_of(caller: Identity, what: str) -> str:
    """The caller's department, where ``what`` (e.g. "Drop-offs") exists only inside one."""
    if caller.department_id is None:
        raise NotAMember(f"{what} belong to a department; sign in as its member.")
    return caller.department_id


def require_approved(caller: Identity) -> None:
    """Points are earned and spent only in a department whose registration is approved."""
    if caller.department_status != DepartmentStatus.approved:
        raise DepartmentNotApproved(
            f"Your department is {caller.department_status}; the exchange opens to it once "
            "its registration is approved."
        )


def require_desk(caller: Identity, department_id: str) -> None:
    """A department's pickup desk and its incidents are for its own coordinators; to anyone
    else another department's are indistinguishable from a missing one."""
    if caller.department_id != department_id or not caller.has(Role.coordinator):
        raise NotFound(f"No department {department_id!r}.")
