"""Who may take part in the exchange."""

from catalog.errors import DepartmentNotApproved
from catalog.identity import Identity
from catalog.models import DepartmentStatus
from exchange.errors import NotAMember


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
