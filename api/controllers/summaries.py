"""A department's activity summary (总结) for a period: the draft, its pictures, the .docx."""

import asyncio
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.datastructures import UploadFile
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, MultipartBody, QueryParameter
from litestar.response import Response
from litestar.security.jwt import Token

from api.auth import requires
from api.controllers.media import ImageOperation
from api.controllers.refusals import refusals
from api.deadlines import REPORT_DEADLINE
from api.pages import summary_document, summary_view
from api.params import DB, PERIOD, AskedPeriod
from catalog import departments, photos
from catalog.identity import Identity
from catalog.models import Department, Role
from exchange import reports, summaries
from exchange.models import SummaryPhoto

Language = Annotated[
    Literal["zh", "en"] | None,
    QueryParameter(description="the draft's language; default the caller's, or zh"),
]
Format = Annotated[
    Literal["json", "docx"] | None,
    QueryParameter(description="`docx`: the Word document"),
]


class PhotoOut(msgspec.Struct):
    id: str
    caption: str
    media_type: str
    width: int
    height: int
    url: str
    uploaded_at: str
    uploaded_by: str

    @classmethod
    def of(cls, p: summaries.PhotoInfo | SummaryPhoto, department_id: str) -> "PhotoOut":
        return cls(
            id=p.id,
            caption=p.caption,
            media_type=p.media_type,
            width=p.width,
            height=p.height,
            url=f"/api/departments/{department_id}/summary/photos/{p.id}",
            uploaded_at=p.uploaded_at.isoformat(),
            uploaded_by=p.uploaded_by,
        )


class SummaryOut(msgspec.Struct):
    department_id: str
    period: str
    text: str
    characters: Annotated[int, msgspec.Meta(description="every character except whitespace")]
    limit: int
    saved: Annotated[bool, msgspec.Meta(description="false: a fresh draft from the report")]
    pictures: Annotated[
        list[str], msgspec.Meta(description="chosen, in order: `chart:<key>` or `photo:<id>`")
    ]
    charts: list[str]
    photos: list[PhotoOut]
    updated_at: str | None
    updated_by: str | None
    co2e_factor_set: Annotated[
        str,
        msgspec.Meta(
            description="the CO2e factor set the figures use: the one the summary was saved "
            "with, so a later change of factors leaves it as it was"
        ),
    ]


class SummaryIn(msgspec.Struct):
    text: Annotated[str, msgspec.Meta(max_length=summaries.MAX_TEXT_LENGTH)]
    pictures: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=64)]],
        msgspec.Meta(
            max_length=summaries.MAX_PICTURES,
            description="up to 6: `chart:daily`, `chart:categories`, `chart:points`, "
            "or `photo:<id>` of an uploaded photo",
        ),
    ] = []


class PhotoForm(msgspec.Struct):
    file: UploadFile
    caption: str = ""


COORDINATOR = [requires(Role.coordinator)]
READERS = [requires(Role.coordinator, Role.admin)]
PERIOD_HELP = "The period: `?campaign=<id>`, or `?from=YYYY-MM-DD&to=YYYY-MM-DD` (Asia/Shanghai)."


async def _department_and_period(
    request: Request[Identity, Token, Any], db: DB, department_id: str, period: AskedPeriod
) -> tuple[Department, reports.Period]:
    department = await departments.get_department(db, request.user, department_id)
    return department, await period.resolve(db, department.id)


class SummaryController(Controller):
    path = "/api/departments/{department_id:str}/summary"
    tags = ["Reports"]
    dependencies = {"period": PERIOD}

    async def _view(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: str,
        period: AskedPeriod,
        language: str | None = None,
    ) -> summary_view.SummaryView:
        department, resolved = await _department_and_period(request, db, department_id, period)
        language = language or (request.user.language if request.user.language == "en" else "zh")
        return await summary_view.load(db, request.user, department, resolved, language)

    @get(
        "/",
        guards=READERS,
        opt=REPORT_DEADLINE,
        summary="The summary for a period: saved, or freshly drafted from the report",
        description=PERIOD_HELP + " With `format=docx`, the Word document (title, paragraphs, "
        "a table of figures, the chosen pictures with captions), refused with 422 and the "
        "count while the text has more than 2,000 characters (whitespace not counted).",
        responses={
            200: ResponseSpec(
                data_container=SummaryOut,
                description="The summary as JSON; with `format=docx`, the Word document "
                f"({summary_document.MEDIA_TYPE})",
            ),
            **refusals(
                _403="Not a coordinator or admin",
                _404="No such department (or another department's), or no such campaign",
                _422="Invalid period; Summary too long (with `characters` and `limit`)",
            ),
        },
    )
    async def get_summary(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        period: AskedPeriod,
        language: Language = None,
        format: Format = None,
    ) -> Response[Any]:
        view = await self._view(request, db, department_id, period, language)
        if format == "docx":
            language = language or ("en" if request.user.language == "en" else "zh")
            document = await summary_document.export(db, view, language)
            return Response(
                document,
                media_type=summary_document.MEDIA_TYPE,
                headers={
                    "Content-Disposition": f'attachment; filename="summary-{department_id}.docx"'
                },
            )
        return Response(self._out(department_id, view))

    def _out(self, department_id: str, view: summary_view.SummaryView) -> SummaryOut:
        return SummaryOut(
            department_id=department_id,
            period=view.key,
            text=view.text,
            characters=view.characters,
            limit=summaries.MAX_CHARACTERS,
            saved=view.saved is not None,
            pictures=view.pictures,
            charts=[f"chart:{c}" for c in summaries.chart_keys(view.scope)],
            photos=[PhotoOut.of(p, department_id) for p in view.photos],
            updated_at=view.saved.updated_at.isoformat() if view.saved else None,
            updated_by=view.saved.updated_by if view.saved else None,
            co2e_factor_set=view.report.factor_set.id,
        )

    @put(
        "/",
        guards=COORDINATOR,
        summary="Save the edited summary and its chosen pictures",
        description=PERIOD_HELP + " A draft may be saved over 2,000 characters; only its "
        "export is refused.",
        responses=refusals(
            _403="Not a coordinator",
            _404="No such department (or another department's), or no such campaign",
            _422="Invalid period, text or pictures",
        ),
    )
    async def save_summary(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        data: JSONBody[SummaryIn],
        period: AskedPeriod,
    ) -> SummaryOut:
        view = await self._view(request, db, department_id, period)
        await summaries.save_summary(
            db,
            view.scope,
            view.key,
            text=data.text,
            pictures=data.pictures,
            actor_id=request.user.user_id,
            factor_set=view.report.factor_set.id,
        )
        view = await self._view(request, db, department_id, period)
        return self._out(department_id, view)

    @post(
        "/photos",
        status_code=201,
        guards=COORDINATOR,
        request_max_body_size=photos.MAX_PHOTO_BYTES + 64 * 1024,
        summary="Upload a photo of the activity: JPEG or PNG, at most 2 MB",
        description=PERIOD_HELP + " The type is decided by the content, not the name; the "
        "photo is re-encoded, which removes its EXIF (camera, GPS position) and other metadata.",
        responses=refusals(
            _403="Not a coordinator",
            _404="No such department (or another department's), or no such campaign",
            _413="Photo too large",
            _415="Not a JPEG or PNG image",
            _422="Invalid period or caption; too many photos",
        ),
    )
    async def upload_photo(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        data: MultipartBody[PhotoForm],
        period: AskedPeriod,
    ) -> PhotoOut:
        department, resolved = await _department_and_period(request, db, department_id, period)
        content = await data.file.read(photos.MAX_PHOTO_BYTES + 1)
        clean = await asyncio.to_thread(summaries.clean_photo, content)
        photo = await summaries.add_photo(
            db,
            department.id,
            summaries.period_key(resolved),
            clean,
            data.caption,
            request.user.user_id,
        )
        return PhotoOut.of(photo, department.id)

    @get(
        "/photos/{photo_id:str}",
        guards=READERS,
        summary="An uploaded activity photo: PNG or JPEG",
        operation_class=ImageOperation,
        responses=refusals(_404="No such photo in this department"),
    )
    async def get_photo(
        self,
        request: Request[Identity, Token, Any],
        db: DB,
        department_id: FromPath[str],
        photo_id: FromPath[str],
    ) -> Response[bytes]:
        department = await departments.get_department(db, request.user, department_id)
        photo = await summaries.get_photo(db, department.id, photo_id)
        return Response(
            photo.content,
            media_type=photo.media_type,
            headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )
