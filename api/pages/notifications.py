"""Notification pages: a department's group robots (coordinators), what was sent and what
failed with a resend (coordinators for their department, admins for all), and how a user is
reached by e-mail (everyone signed in)."""

from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Response, Template
from litestar.security.jwt import Token

from api import i18n
from api.auth import requires
from api.notifications import delivery_config
from api.pages.forms import savepoint, text
from api.pages.rendering import language_of, page, redirect, translator
from api.params import DB, After
from catalog import contact, departments
from catalog.errors import InvalidField
from catalog.identity import Identity
from catalog.models import Role
from exchange.errors import InvalidInput, NotFound
from exchange.notify import channels, outbox, worker
from exchange.notify.channels import RobotChange
from exchange.notify.robots import KINDS

PAGE_SIZE = 50


def labels(request: Request[Any, Any, Any]) -> dict[str, str]:
    """Names of the kinds of message, the channels and the delivery states, in the page's
    language."""
    _ = translator(request).gettext
    return {
        "dropoff_confirmed": _("Drop-off confirmed"),
        "dropoff_rejected": _("Drop-off not accepted"),
        "order_ready": _("Order ready for pickup"),
        "order_expiring": _("Order to pick up by tomorrow"),
        "order_released": _("Order released"),
        "points_expiring": _("Points about to expire"),
        "daily_figures": _("The day's figures"),
        "department_applied": _("Department application"),
        "email": _("E-mail"),
        "wecom": _("WeCom"),
        "dingtalk": _("DingTalk"),
        "feishu": _("Feishu"),
        "queued": _("Waiting"),
        "sent": _("Sent"),
        "dead": _("Failed"),
        "skipped": _("Not sent"),
        "none": _("Nobody to send it to"),
    }


class ChannelPages(Controller):
    path = "/coord/channels"
    guards = [requires(Role.coordinator)]
    include_in_schema = False

    async def _render(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        *,
        values: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        result: tuple[str, bool, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        department = await departments.get_department(
            db, request.user, request.user.department_id or ""
        )
        settings = request.app.state.settings
        views = await channels.channels_of(db, department.id, settings.secret_box)
        return page(
            request,
            "coord/channels.html",
            status_code=status_code,
            title=translator(request).gettext("Group robots"),
            department=department,
            robots=[(view, KINDS[view.kind]) for view in views],
            labels=labels(request),
            email=bool(settings.smtp_host),
            values=values or {},
            errors=errors or {},
            result=result,
        )

    @get("/")
    async def show(self, request: Request[Identity, Token, Any], db: DB) -> Template:
        return await self._render(request, db)

    @post("/{kind:str}")
    async def save(
        self, request: Request[Identity, Token, Any], db: DB, kind: FromPath[str]
    ) -> Response[Any]:
        _ = translator(request).gettext
        if kind not in KINDS:
            raise NotFound(f"No robot kind {kind!r}.")
        form = await request.form()
        url, secret = text(form, f"{kind}-webhook_url", 600), text(form, f"{kind}-secret", 300)
        change = RobotChange(
            webhook_url=url or None,
            secret="" if form.get("no_secret") == "yes" else secret or None,
            enabled=form.get("enabled") == "yes",
        )
        settings = request.app.state.settings
        try:
            async with savepoint(db):
                department_id = request.user.department_id or ""
                await departments.get_active_department(db, request.user, department_id)
                await channels.set_channels(
                    db,
                    department_id,
                    {kind: change},
                    request.user.user_id,
                    settings.secret_box,
                    settings.webhook_hosts,
                )
        except InvalidInput as error:
            field = error.field.removeprefix(f"{kind}.")
            rule = {
                "webhook_url": _(
                    "Paste the robot's webhook address exactly as the platform shows it."
                ),
                "secret": _("Paste the signing secret exactly as the platform shows it."),
            }.get(field, error.rule)
            return await self._render(
                request,
                db,
                values={f"{kind}-webhook_url": url},  # never the secret, not even back
                errors={f"{kind}-{field}": rule},
                status_code=422,
            )
        return redirect("/coord/channels")

    @post("/{kind:str}/remove")
    async def remove(
        self, request: Request[Identity, Token, Any], db: DB, kind: FromPath[str]
    ) -> Response[Any]:
        if kind not in KINDS:
            raise NotFound(f"No robot kind {kind!r}.")
        settings = request.app.state.settings
        await channels.set_channels(
            db,
            request.user.department_id or "",
            {kind: None},
            request.user.user_id,
            settings.secret_box,
            settings.webhook_hosts,
        )
        return redirect("/coord/channels")

    @post("/{kind:str}/test")
    async def test(
        self, request: Request[Identity, Token, Any], db: DB, kind: FromPath[str]
    ) -> Template:
        if kind not in KINDS:
            raise NotFound(f"No robot kind {kind!r}.")
        settings = request.app.state.settings
        # Read in a transaction of its own: none stays open while the platform answers (the
        # request's own begins only when the page is rendered, after).
        async with request.app.state.session_factory() as session, session.begin():
            department = await departments.get_department(
                session, request.user, request.user.department_id or ""
            )
            robot = await channels.robot(session, department.id, kind, settings.secret_box)
        outcome = await worker.send_trial(
            delivery_config(settings), robot, department.name, language_of(request)
        )
        return await self._render(request, db, result=(kind, outcome.sent, outcome.error))


async def _messages(
    request: Request[Identity, Token, Any], db: DB, department_id: str | None, after: str | None
) -> Template:
    state = request.query_params.get("state") or None
    if state not in (None, *outbox.STATES):
        state = None
    items, nxt = await outbox.list_messages(
        db, department_id, state=state, limit=PAGE_SIZE, after=after
    )
    department = (
        await departments.get_department(db, request.user, department_id) if department_id else None
    )
    return page(
        request,
        "coord/messages.html",
        title=translator(request).gettext("Messages"),
        department=department,
        items=items,
        next=nxt,
        state=state,
        states=outbox.STATES,
        labels=labels(request),
        base=request.url.path,
    )


class MessagePages(Controller):
    path = "/coord/messages"
    guards = [requires(Role.coordinator)]
    include_in_schema = False

    @get("/")
    async def listing(
        self, request: Request[Identity, Token, Any], db: DB, after: After = None
    ) -> Template:
        return await _messages(request, db, request.user.department_id or "", after)

    @post("/{message_id:str}/resend")
    async def resend(
        self, request: Request[Identity, Token, Any], db: DB, message_id: FromPath[str]
    ) -> Response[Any]:
        await outbox.resend(db, request.user, request.user.department_id or "", message_id)
        return redirect("/coord/messages")


class AdminMessagePages(Controller):
    path = "/admin/messages"
    guards = [requires(Role.admin)]
    include_in_schema = False

    @get("/")
    async def listing(
        self, request: Request[Identity, Token, Any], db: DB, after: After = None
    ) -> Template:
        return await _messages(request, db, None, after)

    @post("/{department_id:str}/{message_id:str}/resend")
    async def resend(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        message_id: FromPath[str],
    ) -> Response[Any]:
        await outbox.resend(db, request.user, department_id, message_id)
        return redirect("/admin/messages")


class ContactPage(Controller):
    path = "/me/notifications"
    include_in_schema = False

    async def _render(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        *,
        values: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        saved: bool = False,
        status_code: int = 200,
    ) -> Template:
        found = await contact.contact_of(db, request.user.user_id)
        return page(
            request,
            "employee/notifications.html",
            status_code=status_code,
            title=translator(request).gettext("Notifications"),
            values=values
            or {
                "email": found.email or "",
                "email_opt_out": "yes" if found.email_opt_out else "",
                "language": found.language or "",
            },
            errors=errors or {},
            saved=saved,
            email=bool(request.app.state.settings.smtp_host),
            languages=i18n.LANGUAGES,
        )

    @get("/")
    async def show(self, request: Request[Identity, Token, Any], db: DB) -> Template:
        return await self._render(request, db)

    @post("/")
    async def save(self, request: Request[Identity, Token, Any], db: DB) -> Template:
        form = await request.form()
        values = {
            "email": text(form, "email", 300),
            "email_opt_out": "yes" if form.get("email_opt_out") == "yes" else "",
            "language": i18n.supported(text(form, "language", 8)) or "",
        }
        try:
            async with savepoint(db):
                await contact.set_contact(
                    db,
                    request.user.user_id,
                    email=values["email"] or None,
                    email_opt_out=bool(values["email_opt_out"]),
                    language=values["language"] or None,
                )
        except InvalidField:
            _ = translator(request).gettext
            error = _("Enter an e-mail address such as name@example.cn, or leave it empty.")
            return await self._render(
                request, db, values=values, errors={"email": error}, status_code=422
            )
        return await self._render(request, db, saved=True)
