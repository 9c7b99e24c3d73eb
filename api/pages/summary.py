"""The summary (总结) pages: `/coord/summary` for a department, `/admin/summary` for the platform.

A draft composed from the period's report, edited in a textarea with a live count of the
characters the notice counts (api/static/js/summary.js; the server counts again), up to six
pictures (the report's charts and uploaded photos), and the export as .docx or as a page to
print. An export over 2,000 characters is refused with the count, in words.
"""

import asyncio
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Response, Template
from litestar.security.jwt import Token

from api.auth import requires
from api.deadlines import REPORT_DEADLINE
from api.pages import summary_document, summary_view
from api.pages.forms import savepoint, text
from api.pages.products import photo_rule
from api.pages.rendering import language_of, page, redirect, translator
from api.pages.reports import (
    Chosen,
    PeriodChoice,
    choose_period,
    drawn,
    factor_rows,
    this_week_days,
)
from api.params import DB, PERIOD, AskedPeriod
from catalog import departments, photos
from catalog.identity import Identity
from catalog.models import Department, Role, User
from exchange import summaries
from exchange.errors import InvalidInput, SummaryTooLong

MAX_UPLOAD = photos.MAX_PHOTO_BYTES + 64 * 1024


class SummaryPages(Controller):
    """The department's summary; PlatformSummaryPages below is the same for the platform."""

    path = "/coord/summary"
    guards = [requires(Role.coordinator)]
    include_in_schema = False
    opt = REPORT_DEADLINE
    dependencies = {"period": PERIOD}

    async def department(self, request: Request[Identity, Token, Any], db: DB) -> Department | None:
        return await departments.get_department(db, request.user, request.user.department_id or "")

    async def _state(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        period: AskedPeriod,
    ) -> tuple[Department | None, PeriodChoice, summary_view.SummaryView | None]:
        department = await self.department(request, db)
        scope_id = department.id if department else None
        choice = await choose_period(request, db, scope_id, period)
        view = None
        if choice.period is not None:
            view = await summary_view.load(
                db, request.user, department, choice.period, language_of(request)
            )
        return department, choice, view

    async def _render(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department: Department | None,
        choice: PeriodChoice,
        view: summary_view.SummaryView | None,
        *,
        text_typed: str | None = None,
        chosen: list[str] | None = None,
        errors: dict[str, str] | None = None,
        notice: str | None = None,
        status_code: int = 200,
    ) -> Template:
        _ = translator(request).gettext
        language = language_of(request)
        editor = None
        if view is not None and view.saved is not None:
            editor = await db.get(User, view.saved.updated_by)
        charts = view.charts(language) if view else []
        body = text_typed if text_typed is not None else (view.text if view else "")
        return page(
            request,
            "reports/summary.html",
            status_code=422 if (choice.error or errors) else status_code,
            title=_("Summary"),
            action=self.path,
            department=department,
            departments=[],
            choice=choice,
            view=view,
            text=body,
            characters=summaries.count_characters(body),
            limit=summaries.MAX_CHARACTERS,
            max_pictures=summaries.MAX_PICTURES,
            chosen=chosen if chosen is not None else (view.pictures if view else []),
            charts=charts,
            editor=editor,
            factors=factor_rows(view.report, language) if view else [],
            factor_set=view.report.factor_set if view else None,
            errors=errors or {},
            notice=notice,
            period_query=urlencode(choice.query),
            week_query=urlencode(dict(zip(("from", "to"), this_week_days(), strict=True))),
        )

    @get("/")
    async def show(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        period: AskedPeriod,
        saved: Chosen = None,
    ) -> Template:
        department, choice, view = await self._state(request, db, period)
        notice = translator(request).gettext("Saved.") if saved else None
        return await self._render(request, db, department, choice, view, notice=notice)

    @post("/")
    async def save(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        period: AskedPeriod,
    ) -> Response[Any]:
        _ = translator(request).gettext
        department, choice, view = await self._state(request, db, period)
        form = await request.form()
        typed = text(form, "text", summaries.MAX_TEXT_LENGTH + 1)
        chosen = [str(p) for p in form.getall("pictures", [])]
        if view is None:
            return await self._render(request, db, department, choice, view)
        errors: dict[str, str] = {}
        if len(chosen) > summaries.MAX_PICTURES:
            errors["pictures"] = _("Choose at most 6 pictures.")
        else:
            try:
                async with savepoint(db):
                    await summaries.save_summary(
                        db,
                        view.scope,
                        view.key,
                        text=typed,
                        pictures=chosen,
                        actor_id=request.user.user_id,
                        factor_set=view.report.factor_set.id,
                    )
            except InvalidInput as refused:
                errors[refused.field] = (
                    _("Choose at most 6 pictures, each once.")
                    if refused.field == "pictures"
                    else _("The text is too long to keep: at most 20,000 characters.")
                )
        if errors:
            return await self._render(
                request,
                db,
                department,
                choice,
                view,
                text_typed=typed,
                chosen=chosen,
                errors=errors,
            )
        return redirect(f"{self.path}?{urlencode({**choice.query, 'saved': '1'})}")

    @post("/photos", request_max_body_size=MAX_UPLOAD)
    async def upload(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        period: AskedPeriod,
    ) -> Response[Any]:
        _ = translator(request).gettext
        department, choice, view = await self._state(request, db, period)
        if view is None:
            return await self._render(request, db, department, choice, view)
        form = await request.form()
        upload = form.get("photo")
        error = None
        if upload is None or isinstance(upload, str) or not upload.filename:
            error = _("Choose a photo to upload.")
        else:
            content = await upload.read(photos.MAX_PHOTO_BYTES + 1)
            try:
                clean = await asyncio.to_thread(summaries.clean_photo, content)
                async with savepoint(db):
                    await summaries.add_photo(
                        db,
                        view.scope,
                        view.key,
                        clean,
                        text(form, "caption", summaries.MAX_CAPTION),
                        request.user.user_id,
                    )
            except photos.PhotoRejected as refused:
                error = (
                    photo_rule(request, refused)
                    if isinstance(refused, photos.PhotoTooLarge)
                    else _("The photo must be a JPEG or PNG image.")
                )
            except InvalidInput:
                error = _("At most 20 photos per summary.")
        if error:
            return await self._render(
                request, db, department, choice, view, errors={"photo": error}
            )
        return redirect(f"{self.path}?{urlencode(choice.query)}#pictures")

    @get("/photos/{photo_id:str}")
    async def photo(
        self, request: Request[Identity, Token, Any], db: DB, photo_id: FromPath[str]
    ) -> Response[bytes]:
        department = await self.department(request, db)
        scope = department.id if department else summaries.PLATFORM
        found = await summaries.get_photo(db, scope, photo_id)
        return Response(
            found.content,
            media_type=found.media_type,
            headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    @get("/export.docx")
    async def export(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        period: AskedPeriod,
    ) -> Response[Any]:
        _ = translator(request).gettext
        department, choice, view = await self._state(request, db, period)
        if view is None:
            return await self._render(request, db, department, choice, view)
        try:
            document = await summary_document.export(db, view, language_of(request))
        except SummaryTooLong as refused:
            message = _(
                "The summary has %(count)s characters (whitespace not counted); the notice "
                "allows at most %(limit)s. Shorten it and save, then export again."
            ) % {"count": f"{refused.characters:,}", "limit": f"{refused.limit:,}"}
            return await self._render(
                request, db, department, choice, view, errors={"text": message}
            )
        name = "summary.docx" if department is None else f"summary-{department.id}.docx"
        return Response(
            document,
            media_type=summary_document.MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @get("/print")
    async def printable(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        period: AskedPeriod,
    ) -> Template:
        _ = translator(request).gettext
        language = language_of(request)
        department, choice, view = await self._state(request, db, period)
        if view is None:
            return await self._render(request, db, department, choice, view)
        if (count := view.characters) > summaries.MAX_CHARACTERS:
            message = _(
                "The summary has %(count)s characters (whitespace not counted); the notice "
                "allows at most %(limit)s. Shorten it and save, then export again."
            ) % {"count": f"{count:,}", "limit": f"{summaries.MAX_CHARACTERS:,}"}
            return await self._render(
                request, db, department, choice, view, errors={"text": message}
            )
        charts = {f"chart:{c.key}": c for c in view.charts(language)}
        wanted = [charts[ref] for ref in view.pictures if ref in charts]
        shown = {f"chart:{s.chart.key}": s for s in await drawn(wanted)}
        photo_captions = {f"photo:{p.id}": p for p in view.photos}
        paragraphs = [p.strip() for p in view.text.split("\n") if p.strip()]
        return page(
            request,
            "reports/summary_print.html",
            title=paragraphs[0] if paragraphs else _("Summary"),
            action=self.path,
            paragraphs=paragraphs,
            pictures=[
                shown.get(ref) or photo_captions.get(ref)
                for ref in view.pictures
                if ref in shown or ref in photo_captions
            ],
            figures=summaries.headline_figures(view.report, language),
            figures_heading=summaries.FIGURES_HEADING[language],
            period_query=urlencode(choice.query),
        )


class PlatformSummaryPages(SummaryPages):
    path = "/admin/summary"
    guards = [requires(Role.admin)]

    async def department(self, request: Request[Identity, Token, Any], db: DB) -> Department | None:
        return None
