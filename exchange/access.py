"""Who may take part in the exchange."""

from catalog.errors import DepartmentNotApproved
from catalog.identity import Identity
from catalog.models import DepartmentStatus


def require_approved(caller: Identity) -> None:
    """Points are earned and spent only in a department whose registration is approved."""
    if caller.department_status != DepartmentStatus.approved:
        raise DepartmentNotApproved(
            f"Your department is {caller.department_status}; the exchange opens to it once "
            "its registration is approved."
        )
