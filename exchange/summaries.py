"""The activity summary (总结) each department submits: at most 2,000 characters, with pictures.

A first draft is composed from the period's report by fixed templates, in Chinese or English:
what the department did, the headline figures, the value to the village, the environmental
effect with the source of its factors, participation, thanks. The coordinator edits it; the
edited text and the chosen pictures (report charts and uploaded activity photos, at most six)
are kept per department and period, with who saved them and when.

Characters are counted by the notice's rule: every character except whitespace.
api/static/js/summary.js mirrors `count_characters` for the live count in the page.
"""

import io
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from PIL import Image, ImageOps
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalog import photos
from catalog.models import utcnow
from catalog.text import unstorable_character
from exchange.categories import CATEGORIES
from exchange.errors import InvalidInput, NotFound, SummaryTooLong
from exchange.models import Summary, SummaryPhoto
from exchange.reports import Period, Report, format_kg, format_rate, format_yuan

PLATFORM = "*"  # the scope of the platform's own summary, in place of a department id
MAX_CHARACTERS = 2000  # the notice's limit, counted by count_characters
MAX_TEXT_LENGTH = 20_000  # what a saved draft may hold while it is being cut down
MAX_PICTURES = 6
MAX_PHOTOS = 20  # uploaded per department and period
MAX_PHOTO_SIDE = 2400  # pixels; larger photos are scaled down when re-encoded
MAX_CAPTION = 100
DEPARTMENT_CHARTS = ("daily", "categories", "points")
PLATFORM_CHARTS = (*DEPARTMENT_CHARTS, "participation")


def count_characters(text: str) -> int:
    """Every character except whitespace (spaces, tabs, line breaks, the ideographic space…)."""
    return sum(1 for character in text if not character.isspace())


def check_exportable(text: str) -> int:
    """The counted characters, or SummaryTooLong when over the notice's limit."""
    count = count_characters(text)
    if count > MAX_CHARACTERS:
        raise SummaryTooLong(count, MAX_CHARACTERS)
    return count


def period_key(period: Period) -> str:
    """What a summary is stored under: the campaign, or the first and last day."""
    if period.campaign_id:
        return f"campaign:{period.campaign_id}"
    return f"{period.first_day.isoformat()}/{period.last_day.isoformat()}"


def chart_keys(scope: str) -> tuple[str, ...]:
    return PLATFORM_CHARTS if scope == PLATFORM else DEPARTMENT_CHARTS


# --- the draft ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """Who the summary is about, as the draft names them."""

    name: str  # the department, or the platform's name
    village: str  # the designated village, or a phrase for all of them


PLATFORM_SUBJECT = {
    "zh": Subject("云兑换平台各部门", "各定点扶贫点"),
    "en": Subject("The departments of Cloud Exchange", "their designated villages"),
}


def period_text(period: Period, language: str) -> str:
    first, last = period.first_day.isoformat(), period.last_day.isoformat()
    dates = (
        first
        if first == last
        else (f"{first}至{last}" if language == "zh" else f"{first} to {last}")
    )
    if period.campaign_name:
        return (
            f"“{period.campaign_name}”（{dates}）"
            if language == "zh"
            else f"“{period.campaign_name}” ({dates})"
        )
    return dates


def _category_name(code: str, language: str) -> str:
    kind = CATEGORIES[code]
    return kind.name_zh if language == "zh" else kind.name_en


FIGURES_HEADING = {"zh": "主要数据", "en": "Key figures"}


def headline_figures(report: Report, language: str) -> list[tuple[str, str]]:
    """The small table of figures beside the summary text (and in the Word document)."""
    zh = language == "zh"
    part, points = report.participation, report.points
    confirmed = sum(c.count for c in report.categories)
    return [
        ("确认回收次数" if zh else "Drop-offs confirmed", f"{confirmed:,}"),
        ("废纸（千克）" if zh else "Paper (kg)", format_kg(report.paper_grams)),
        (
            "硒鼓墨盒及电子产品（件）" if zh else "Cartridges and devices (items)",
            f"{report.items:,}",
        ),
        ("发放积分" if zh else "Points issued", f"{points.issued:,}"),
        ("消费积分" if zh else "Points spent", f"{points.spent:,}"),
        ("过期积分" if zh else "Points expired", f"{points.expired:,}"),
        ("帮扶金额（元）" if zh else "Value to the village (yuan)", format_yuan(report.value_fen)),
        ("减排二氧化碳当量（千克）" if zh else "CO2e avoided (kg)", format_kg(report.co2e_grams)),
        (
            "参与人数" if zh else "Employees taking part",
            f"{part.participants:,} / {part.members:,}",
        ),
        ("参与率" if zh else "Participation rate", format_rate(part.rate_permille)),
    ]


def _items_text(report: Report, language: str) -> str:
    counted = [c for c in report.categories if c.unit != "g" and c.quantity]
    if language == "zh":
        return "、".join(f"{_category_name(c.category, 'zh')}{c.quantity}件" for c in counted)
    return ", ".join(f"{c.quantity} {_category_name(c.category, 'en')}" for c in counted)


def _effect_text(report: Report, language: str) -> str:
    zh = language == "zh"
    collected = [c for c in report.categories if c.quantity]
    with_factor = [c for c in collected if c.co2e_grams is not None]
    without = [c for c in collected if c.co2e_grams is None]
    sentences = []
    if with_factor:
        # The publication only; each factor's derivation is printed under the summary.
        last_day = report.period.last_day
        used = [report.factor_set.for_period(c.category, last_day) for c in with_factor]
        sources = "; ".join(sorted({f.publication.split(":")[0] for f in used if f}))
        if any(f and f.to_confirm for f in used):
            sources += "；部分因子待核实" if zh else "; some factors still to be confirmed"
        kg = format_kg(report.co2e_grams)
        sentences.append(
            f"按排放因子估算，回收物共减少约{kg}千克二氧化碳当量排放（因子来源：{sources}）。"
            if zh
            else f"By published emission factors, the material collected avoided about {kg} kg "
            f"of CO2e (sources: {sources})."
        )
    if without:
        names = ("、" if zh else ", ").join(_category_name(c.category, language) for c in without)
        sentences.append(
            f"{names}暂无可查证的排放因子，未计入减排量。"
            if zh
            else f"No published factor was found for {names}, so no CO2e is claimed for them."
        )
    if not collected:
        sentences.append(
            "本期尚无确认的回收量。" if zh else "Nothing was confirmed as collected yet."
        )
    return "".join(sentences) if zh else " ".join(sentences)


def compose_draft(report: Report, subject: Subject, language: str) -> str:
    """A first draft from the report by fixed templates; the coordinator edits it."""
    part, points = report.participation, report.points
    when = period_text(report.period, language)
    dropoffs = sum(c.count for c in report.categories)
    items = _items_text(report, language)
    delivered = sum(p.quantity for p in report.products)
    top = report.products[:5]
    if language == "zh":
        products = "、".join(p.name for p in top) + ("等" if len(report.products) > 5 else "")
        paragraphs = [
            f"{subject.name}“云兑换”活动总结",
            f"{when}，{subject.name}开展“云兑换”活动，干部职工将废旧报纸、硒鼓墨盒和小型电子产品"
            f"投放到回收点，以积分兑换定点扶贫点{subject.village}的农产品，把节约能源资源和消费帮扶结合起来。",
            f"一、主要成效。活动期间共确认回收{dropoffs}次，回收废纸{format_kg(report.paper_grams)}千克"
            + (f"，{items}" if items else "")
            + f"。共发放积分{points.issued}分，职工兑换消费积分{points.spent}分"
            + (f"，逾期未用过期积分{points.expired}分" if points.expired else "")
            + "。",
            f"二、助力乡村振兴。职工兑换{subject.village}的产品{delivered}件"
            + (f"（{products}）" if products else "")
            + f"，带动消费帮扶{format_yuan(report.value_fen)}元。",
            f"三、环境效益。{_effect_text(report, 'zh')}",
            f"四、参与情况。{part.members}名职工中有{part.participants}人参与回收，"
            f"参与率{format_rate(part.rate_permille)}；{part.ordered}人兑换了产品。",
            f"五、致谢。感谢全体干部职工的积极参与，感谢{subject.village}的乡亲们提供优质农产品。"
            "我们将继续践行绿色低碳理念，把节能降碳和消费帮扶长期坚持下去。",
        ]
    else:
        products = ", ".join(p.name for p in top) + (
            " and more" if len(report.products) > 5 else ""
        )
        paragraphs = [
            f"{subject.name}: Cloud Exchange activity summary",
            f"During {when}, {subject.name} ran the Cloud Exchange: staff brought old newspapers, "
            "ink and toner cartridges and small electronics to the collection points and "
            f"exchanged the points they earned for products from {subject.village}, the "
            "designated poverty-alleviation village, joining resource saving with consumption-"
            "based poverty relief.",
            f"What was achieved. {dropoffs} drop-offs were confirmed: "
            f"{format_kg(report.paper_grams)} kg of paper"
            + (f" and {items}" if items else "")
            + f". {points.issued} points were issued and {points.spent} points spent"
            + (f"; {points.expired} points left unspent expired" if points.expired else "")
            + ".",
            f"Value to the village. Staff took {delivered} products from {subject.village}"
            + (f" ({products})" if products else "")
            + f", worth {format_yuan(report.value_fen)} yuan to the village.",
            f"Environmental effect. {_effect_text(report, 'en')}",
            f"Participation. {part.participants} of {part.members} staff took part "
            f"({format_rate(part.rate_permille)}); {part.ordered} ordered products.",
            f"Thanks. We thank every colleague who took part and the people of "
            f"{subject.village} for their products, and will keep saving energy and "
            "supporting the village.",
        ]
    return "\n\n".join(paragraphs)


# --- stored drafts --------------------------------------------------------------------------


async def get_summary(session: AsyncSession, scope: str, key: str) -> Summary | None:
    return await session.get(Summary, (scope, key))


def picture_refs(summary: Summary | None) -> list[str]:
    return summary.pictures.split() if summary and summary.pictures else []


async def save_summary(
    session: AsyncSession,
    scope: str,
    key: str,
    *,
    text: str,
    pictures: Sequence[str],
    actor_id: str,
    factor_set: str,
) -> Summary:
    """Save the edited text and the chosen pictures. A draft may be over the limit while it
    is being edited; only its export is refused. A summary keeps the CO2e factor set it was
    first saved with (`factor_set`), so its figures do not change when the factors do."""
    text = text.replace("\r\n", "\n")
    if character := unstorable_character(text):
        raise InvalidInput("text", f"must not contain the character {character}")
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidInput("text", f"at most {MAX_TEXT_LENGTH:,} characters in a saved draft")
    await _check_pictures(session, scope, key, pictures)
    summary = await get_summary(session, scope, key)
    now = utcnow()
    if summary is None:
        summary = Summary(
            department_id=scope, period=key, text="", created_by=actor_id, updated_by=actor_id
        )
        session.add(summary)
    summary.text = text
    summary.pictures = " ".join(pictures)
    # The first save fixes the CO2e factors; later edits of the text keep them.
    summary.co2e_factor_set = summary.co2e_factor_set or factor_set
    summary.updated_at = now
    summary.updated_by = actor_id
    try:
        await session.flush()
    except IntegrityError:  # two first saves at once: the other one won
        raise InvalidInput(
            "text", "saved by someone else at the same moment; reload and retry"
        ) from None
    return summary


async def _check_pictures(
    session: AsyncSession, scope: str, key: str, pictures: Sequence[str]
) -> None:
    if len(pictures) > MAX_PICTURES:
        raise InvalidInput("pictures", f"at most {MAX_PICTURES} pictures")
    if len(set(pictures)) != len(pictures):
        raise InvalidInput("pictures", "each picture at most once")
    photo_ids = {p.id for p in await list_photos(session, scope, key)}
    for ref in pictures:
        kind, _, name = ref.partition(":")
        if not (
            (kind == "chart" and name in chart_keys(scope))
            or (kind == "photo" and name in photo_ids)
        ):
            charts = ", ".join(f"chart:{c}" for c in chart_keys(scope))
            raise InvalidInput(
                "pictures", f"{ref!r} is neither a chart ({charts}) nor a photo of this summary"
            )


# --- activity photos ------------------------------------------------------------------------


@dataclass(frozen=True)
class CleanPhoto:
    content: bytes
    media_type: str
    width: int
    height: int


def clean_photo(data: bytes) -> CleanPhoto:
    """Check an upload by its content (JPEG or PNG only) and re-encode it, which drops its
    EXIF, GPS position, comments and colour profile. CPU work: call it off the event loop."""
    extension = photos.sniff(data)  # size, readable image, pixel count
    if extension not in ("jpg", "png"):
        raise photos.PhotoRejected("Activity photos must be JPEG or PNG images.")
    with Image.open(io.BytesIO(data)) as original:
        image = ImageOps.exif_transpose(original)  # keep it upright once EXIF is gone
        image.thumbnail((MAX_PHOTO_SIDE, MAX_PHOTO_SIDE))
        image.info = {}  # nothing of the original's metadata may ride along
        out = io.BytesIO()
        if extension == "jpg":
            image.convert("RGB").save(out, "JPEG", quality=85, optimize=True)
            media_type = "image/jpeg"
        else:
            image.save(out, "PNG", optimize=True)
            media_type = "image/png"
        return CleanPhoto(out.getvalue(), media_type, image.width, image.height)


@dataclass(frozen=True)
class PhotoInfo:
    id: str
    caption: str
    media_type: str
    width: int
    height: int
    uploaded_at: datetime
    uploaded_by: str


async def add_photo(
    session: AsyncSession, scope: str, key: str, photo: CleanPhoto, caption: str, actor_id: str
) -> SummaryPhoto:
    caption = caption.strip()
    if character := unstorable_character(caption):
        raise InvalidInput("caption", f"must not contain the character {character}")
    if len(caption) > MAX_CAPTION:
        raise InvalidInput("caption", f"at most {MAX_CAPTION} characters")
    if len(await list_photos(session, scope, key)) >= MAX_PHOTOS:
        raise InvalidInput("file", f"at most {MAX_PHOTOS} photos per summary")
    row = SummaryPhoto(
        department_id=scope,
        period=key,
        media_type=photo.media_type,
        width=photo.width,
        height=photo.height,
        content=photo.content,
        caption=caption,
        uploaded_by=actor_id,
    )
    session.add(row)
    await session.flush()
    return row


async def list_photos(session: AsyncSession, scope: str, key: str) -> list[PhotoInfo]:
    """The photos uploaded for a summary, oldest first, without their bytes."""
    rows = await session.exec(
        select(
            SummaryPhoto.id,
            SummaryPhoto.caption,
            SummaryPhoto.media_type,
            SummaryPhoto.width,
            SummaryPhoto.height,
            SummaryPhoto.uploaded_at,
            SummaryPhoto.uploaded_by,
        )
        .where(SummaryPhoto.department_id == scope, SummaryPhoto.period == key)
        .order_by(col(SummaryPhoto.id))
    )
    return [PhotoInfo(*row) for row in rows.all()]


async def get_photo(session: AsyncSession, scope: str, photo_id: str) -> SummaryPhoto:
    if not photo_id.isalnum() or not photo_id.isascii():  # ids are hex; nothing else exists
        raise NotFound(f"No photo {photo_id!r}.")
    photo = await session.get(SummaryPhoto, (scope, photo_id))
    if photo is None:
        raise NotFound(f"No photo {photo_id!r}.")
    return photo


def chosen_photo_ids(refs: Collection[str]) -> list[str]:
    return [ref.partition(":")[2] for ref in refs if ref.startswith("photo:")]
