"""Platform admin pages: department registrations (备案)."""

from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Response, Template
from litestar.security.jwt import Token

from api.auth import requires
from api.pages.forms import is_htmx, savepoint
from api.pages.rendering import page, redirect, translator
from api.params import DB, After
from catalog import departments
from catalog.errors import InvalidStatusChange
from catalog.identity import Identity
from catalog.models import DepartmentStatus, Role
from catalog.paging import MAX_LIMIT


class AdminPages(Controller):
    path = "/admin"
    guards = [requires(Role.admin)]
    include_in_schema = False

    @get("/departments")
    async def department_list(
        self, request: Request[Identity, Token, Any], db: DB, after: After = None
    ) -> Template:
        listing = await departments.list_departments(db, request.user, limit=MAX_LIMIT, after=after)
        return page(
            request,
            "admin/departments.html",
            title=translator(request).gettext("Department registrations"),
            departments=listing.items,
            next=listing.next,
        )

    @post("/departments/{department_id:str}/{action:str}")
    async def change_status(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        action: FromPath[str],
    ) -> Response[Any]:
        _ = translator(request).gettext
        status = {"approve": DepartmentStatus.approved, "suspend": DepartmentStatus.suspended}
        if action not in status:
            return redirect("/admin/departments")
        error = None
        try:
            async with savepoint(db):
                department = await departments.change_status(
                    db, request.user, department_id, status[action]
                )
        except InvalidStatusChange:
            department = await departments.get_department(db, request.user, department_id)
            error = _("The department cannot change to that status from its current one.")
        if is_htmx(request):
            return page(request, "admin/_department_row.html", department=department, error=error)
        return redirect("/admin/departments")
