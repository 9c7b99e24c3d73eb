"""Coordinator pages: the department's members, adding one, and CSV import."""

from dataclasses import dataclass
from typing import Any

import structlog
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Template
from litestar.security.jwt import Token

from api.auth import requires
from api.jobs import sealer, wake_runners
from api.pages.forms import is_htmx, savepoint, text
from api.pages.rendering import page, redirect, translator
from api.params import DB, After
from catalog import departments, lockout, members
from catalog.errors import CatalogError, Conflict, ImportRejected, InvalidField
from catalog.identity import Identity
from catalog.models import Role, utcnow
from catalog.paging import DEFAULT_LIMIT
from exchange import jobs
from exchange.member_import import submit_import
from exchange.models import Job, JobState

MAX_IMPORT_BYTES = 2 * 1024 * 1024
# What htmx swaps in while it follows an import: the progress section, and the member list
# once the import is done.
IMPORT_FRAGMENT = "coord/_import_progress.html"
ROLE_CHOICES = ("employee", "coordinator", "auditor")
log = structlog.get_logger()


@dataclass(frozen=True)
class ImportView:
    job: Job
    secret: dict[str, Any]  # the generated passwords, the first time the result is shown
    problems: list[dict[str, object]]

    @property
    def running(self) -> bool:
        return self.job.state in (JobState.queued, JobState.running)

    @property
    def passwords(self) -> dict[str, str]:
        return self.secret.get("initial_passwords", {})


class MemberPages(Controller):
    path = "/coord/members"
    guards = [requires(Role.coordinator)]
    include_in_schema = False

    async def _render(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        *,
        status_code: int = 200,
        after: After = None,
        template: str = "coord/members.html",
        **context: Any,
    ) -> Template:
        department_id = request.user.department_id or ""
        department = await departments.get_department(db, request.user, department_id)
        listing = await members.list_members(db, department_id, limit=DEFAULT_LIMIT, after=after)
        ids = [member.user.id for member in listing.items]
        context.setdefault("values", {"roles": ["employee"]})
        context.setdefault("errors", {})
        return page(
            request,
            template,
            status_code=status_code,
            title=translator(request).gettext("Members"),
            department=department,
            members=listing.items,
            locks=await lockout.locks_of(db, ids, utcnow()),
            next=listing.next,
            role_choices=ROLE_CHOICES,
            **context,
        )

    @get("/")
    async def list_members(
        self, request: Request[Identity, Token, Any], db: DB, after: After = None
    ) -> Template:
        return await self._render(request, db, after=after)

    @post("/")
    async def add_member(self, request: Request[Identity, Token, Any], db: DB) -> Template:
        _ = translator(request).gettext
        form = await request.form()
        values = {
            "username": text(form, "username", 64),
            "display_name": text(form, "display_name", 100),
            "roles": [r for r in form.getall("roles", []) if r in ROLE_CHOICES] or ["employee"],
        }
        errors: dict[str, str] = {}
        messages = {
            "username": _(
                "3–64 letters, digits, '.', '_' or '-', starting with a letter or digit."
            ),
            "display_name": _("Enter a name of 1–100 characters."),
            "roles": _("Choose at least one role."),
        }
        try:
            await departments.get_active_department(
                db, request.user, request.user.department_id or ""
            )
            async with savepoint(db):
                member = await members.add_member(
                    db,
                    request.user.department_id or "",
                    username=values["username"],
                    display_name=values["display_name"],
                    roles=values["roles"],
                )
        except InvalidField as error:
            errors[error.field] = messages.get(error.field, error.rule)
        except Conflict:
            errors["username"] = _("This username is already taken.")
        except CatalogError as error:
            errors["_form"] = str(error.detail)
        if errors:
            return await self._render(request, db, status_code=422, values=values, errors=errors)
        return await self._render(request, db, status_code=201, added=member)

    @post("/import", request_max_body_size=MAX_IMPORT_BYTES)
    async def import_members(self, request: Request[Identity, Token, Any], db: DB) -> Response[Any]:
        """Checks the file here; a good one becomes a job, followed on its own page."""
        _ = translator(request).gettext
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str) or not upload.filename:
            return await self._render(
                request, db, status_code=422, import_error=_("Choose a CSV file to import.")
            )
        data = await upload.read()
        try:
            job = await submit_import(
                request.app.state.session_factory,
                request.user,
                request.user.department_id or "",
                data,
            )
        except ImportRejected as rejected:
            return await self._render(
                request,
                db,
                status_code=422,
                import_problems=[import_problem(request, p) for p in rejected.errors],
                import_name=upload.filename,
            )
        except CatalogError as error:
            return await self._render(request, db, status_code=422, import_error=str(error.detail))
        wake_runners(request)
        return redirect(f"/coord/members/imports/{job.id}")

    @get("/imports/{job_id:str}")
    async def import_job(
        self, request: Request[Identity, Token, Any], db: DB, job_id: FromPath[str]
    ) -> Template:
        """An import under way (a progress bar that htmx refreshes, or the whole page without
        JavaScript) or done: the members added, with their generated passwords the first
        time, or every problem found."""
        job = await jobs.get_own_job(db, job_id, request.user.user_id)
        view = ImportView(
            job,
            await jobs.deliver_secret(db, job, sealer(request.app.state.settings)),
            [import_problem(request, p) for p in (job.error or {}).get("errors", [])],  # type: ignore[union-attr]
        )
        if is_htmx(request):
            return await self._render(request, db, template=IMPORT_FRAGMENT, import_job=view)
        return await self._render(request, db, import_job=view)

    @post("/{user_id:str}/unlock")
    async def unlock(
        self, request: Request[Identity, Token, Any], db: DB, user_id: FromPath[str]
    ) -> Template:
        """Lifts a member's lockout after repeated wrong passwords (theirs or an attacker's)."""
        user = await lockout.unlock(db, request.user, user_id)
        log.info("sign-in lockout lifted", user_id=user_id, by=request.user.user_id)
        return await self._render(request, db, unlocked=user)


def import_problem(
    request: Request[Any, Any, Any], problem: dict[str, object]
) -> dict[str, object]:
    """One row of the catalog's import report, said in the user's language where known."""
    _ = translator(request).gettext
    field, error = problem.get("field"), str(problem.get("error", ""))
    if error == "already taken":
        said = _("This username is already taken.")
    elif error.startswith("duplicate of row "):
        said = _("Same username as row %(row)s.") % {"row": error.removeprefix("duplicate of row ")}
    elif error == "missing column":
        said = _("This column is missing.")
    elif error == "unknown column":
        said = _("Unknown column; the columns are username, display_name, roles and password.")
    else:
        said = {
            "username": _(
                "3–64 letters, digits, '.', '_' or '-', starting with a letter or digit."
            ),
            "display_name": _("Enter a name of 1–100 characters."),
            "roles": _("Roles are employee, coordinator or auditor, separated by ';'."),
            "password": _("A password has 8–256 characters."),
        }.get(str(field), error)
    return {**problem, "error": said}
