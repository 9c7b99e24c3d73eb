"""The summary as a Word document (.docx): title, paragraphs, a small table of figures, and
the chosen pictures with captions. Charts come from api/charts.py as PNG, the same drawing
the report page shows as SVG.

Building the document and drawing the charts are CPU work, done off the event loop.
"""

import asyncio
import io
from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from api import charts
from api.pages.summary_view import SummaryView
from exchange import summaries

MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PICTURE_WIDTH_CM = 15


@dataclass(frozen=True)
class Picture:
    png_or_jpeg: bytes
    caption: str


@dataclass(frozen=True)
class Contents:
    text: str
    figures: list[tuple[str, str]]
    figures_heading: str
    pictures: list[Picture]


async def pictures_for(
    session: AsyncSession, scope: str, refs: Sequence[str], report_charts: Sequence[charts.Chart]
) -> list[Picture]:
    """The chosen pictures, in the order chosen: charts drawn as PNG, photos as stored."""
    by_key = {f"chart:{c.key}": c for c in report_charts}
    wanted = [by_key[ref] for ref in refs if ref in by_key]
    drawn = dict(zip((f"chart:{c.key}" for c in wanted), await charts.pngs(wanted), strict=True))
    pictures = []
    for ref in refs:
        if ref in drawn:
            pictures.append(Picture(drawn[ref], by_key[ref].title))
        elif ref.startswith("photo:"):
            photo = await summaries.get_photo(session, scope, ref.partition(":")[2])
            pictures.append(Picture(photo.content, photo.caption))
    return pictures


def build(contents: Contents) -> bytes:
    # Imported here, as api/charts.py imports matplotlib: python-docx takes a tenth of a second
    # to import, which every process start would pay for a document few ever ask for.
    from docx import Document
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml.ns import qn
    from docx.shared import Cm, Pt

    document = Document()
    normal = document.styles["Normal"]
    normal.font.size = Pt(12)
    # Chinese text takes the East Asian font; Word and WPS substitute what they have.
    normal.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), "宋体")
    paragraphs = [p.strip() for p in contents.text.split("\n") if p.strip()]
    if paragraphs:
        document.add_heading(paragraphs[0], level=1).alignment = WD_ALIGN_PARAGRAPH.CENTER
    for text in paragraphs[1:]:
        paragraph = document.add_paragraph(text)
        paragraph.paragraph_format.first_line_indent = Pt(24)
    document.add_heading(contents.figures_heading, level=2)
    table = document.add_table(rows=0, cols=2)
    table.style = "Table Grid"
    for label, value in contents.figures:
        cells = table.add_row().cells
        cells[0].text, cells[1].text = label, value
    for picture in contents.pictures:
        document.add_picture(io.BytesIO(picture.png_or_jpeg), width=Cm(PICTURE_WIDTH_CM))
        document.paragraphs[-1].alignment = WD_ALIGN_PARAGRAPH.CENTER
        if picture.caption:
            document.add_paragraph(
                picture.caption, style="Caption"
            ).alignment = WD_ALIGN_PARAGRAPH.CENTER
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


async def render(contents: Contents) -> bytes:
    return await asyncio.to_thread(build, contents)


async def export(session: AsyncSession, view: SummaryView, language: str) -> bytes:
    """The Word document; SummaryTooLong (with the count) when the text is over the limit."""
    summaries.check_exportable(view.text)
    pictures = await pictures_for(session, view.scope, view.pictures, view.charts(language))
    return await render(
        Contents(
            text=view.text,
            figures=summaries.headline_figures(view.report, language),
            figures_heading=summaries.FIGURES_HEADING[language],
            pictures=pictures,
        )
    )
