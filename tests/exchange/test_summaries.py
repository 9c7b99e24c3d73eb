"""The activity summary through the API: drafted from the report, edited, saved per
department and period, illustrated with charts and photos, exported as .docx within the
notice's 2,000 characters; on SQLite and PostgreSQL."""

import io
from typing import Any

import pytest
from docx import Document
from litestar.testing import AsyncTestClient
from PIL import Image

from api.app import create_app
from api.settings import Settings
from exchange.summaries import MAX_CHARACTERS, count_characters
from tests.conftest import World
from tests.exchange.helpers import Client, add_station, drop, open_campaign


@pytest.fixture
async def campaign(client: Client, world: World) -> dict[str, Any]:
    """An open campaign in which emp-a dropped paper and cartridges."""
    opened = await open_campaign(client, world.headers["admin"], policy="auto")
    station = await add_station(client, world.headers["coord-a"], world.dept_a)
    for category, quantity in (("paper", 2500), ("ink_cartridge", 3)):
        answer = await drop(client, world.headers["emp-a"], station["code"], category, quantity)
        assert answer.status_code == 201, answer.text
    return opened


def url(world: World, campaign: dict[str, Any], tail: str = "") -> str:
    return f"/api/departments/{world.dept_a}/summary{tail}?campaign={campaign['id']}"


def jpeg_with_exif() -> bytes:
    """A photo whose metadata says which camera took it where, with a comment."""
    image = Image.new("RGB", (320, 240), (30, 120, 60))
    exif = Image.Exif()
    exif[0x010F] = "SnoopCam"  # Make
    exif[0x0110] = "Model X"  # Model
    exif[0x8825] = {1: "N", 2: (28.0, 11.0, 0.0)}  # GPS
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, comment=b"secret comment")
    assert b"SnoopCam" in out.getvalue() and b"secret comment" in out.getvalue()
    return out.getvalue()


def test_characters_are_counted_without_whitespace() -> None:
    assert count_characters("云兑换 总结\n\t第一段　（全角空格）\r\n end ") == 17
    assert count_characters("") == 0
    assert count_characters("\u00a0\u2003\u3000\u2028") == 0  # no-break, em and ideographic spaces


async def test_a_fresh_summary_is_drafted_from_the_report(
    client: Client, world: World, campaign: dict[str, Any]
) -> None:
    answer = await client.get(url(world, campaign), headers=world.headers["coord-a"])
    assert answer.status_code == 200, answer.text
    summary = answer.json()
    assert summary["saved"] is False
    text = summary["text"]
    assert text.startswith("部门a“云兑换”活动总结")
    assert "2.5千克" in text and "墨盒3件" in text and "部门a村" in text  # figures, village
    assert "排放因子" in text  # the environmental effect says where its numbers come from
    assert summary["characters"] == count_characters(text) <= MAX_CHARACTERS
    assert summary["pictures"] == ["chart:daily", "chart:categories", "chart:points"]

    english = await client.get(
        url(world, campaign) + "&language=en", headers=world.headers["coord-a"]
    )
    assert english.json()["text"].startswith("部门a: Cloud Exchange activity summary")


async def test_the_edited_draft_survives_a_new_app_instance(
    client: Client, world: World, campaign: dict[str, Any], settings: Settings
) -> None:
    saved = await client.put(
        url(world, campaign),
        json={"text": "我们的总结\n\n共回收废纸2.5千克。", "pictures": ["chart:points"]},
        headers=world.headers["coord-a"],
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["characters"] == 16

    async with AsyncTestClient(app=create_app(settings)) as restarted:
        again = await restarted.get(url(world, campaign), headers=world.headers["admin"])
    summary = again.json()
    assert summary["saved"] is True
    assert summary["text"] == "我们的总结\n\n共回收废纸2.5千克。"
    assert summary["pictures"] == ["chart:points"]
    assert summary["updated_by"] and summary["updated_at"].endswith("+00:00")  # who, when (UTC)


async def test_the_docx_holds_the_text_the_figures_and_the_pictures(
    client: Client, world: World, campaign: dict[str, Any]
) -> None:
    photo = await client.post(
        url(world, campaign, "/photos"),
        files={"file": ("activity.jpg", jpeg_with_exif(), "image/jpeg")},
        data={"caption": "职工在一楼大厅投放旧报纸"},
        headers=world.headers["coord-a"],
    )
    assert photo.status_code == 201, photo.text
    # Re-encoded: the camera, its GPS position and the comment are gone.
    stored = await client.get(photo.json()["url"], headers=world.headers["coord-a"])
    assert stored.status_code == 200 and stored.headers["content-type"] == "image/jpeg"
    assert b"SnoopCam" not in stored.content and b"secret comment" not in stored.content
    with Image.open(io.BytesIO(stored.content)) as image:
        assert image.size == (320, 240)
        assert not image.getexif()
        assert "comment" not in image.info
    draft = (await client.get(url(world, campaign), headers=world.headers["coord-a"])).json()
    pictures = ["chart:daily", "chart:categories", f"photo:{photo.json()['id']}"]
    saved = await client.put(
        url(world, campaign),
        json={"text": draft["text"], "pictures": pictures},
        headers=world.headers["coord-a"],
    )
    assert saved.status_code == 200, saved.text

    answer = await client.get(url(world, campaign) + "&format=docx", headers=world.headers["admin"])
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/vnd.openxmlformats")
    document = Document(io.BytesIO(answer.content))
    body = [p for p in document.paragraphs if p.style.name != "Caption"]
    text = "\n".join(p.text for p in body)
    assert count_characters(text) <= MAX_CHARACTERS
    assert "部门a“云兑换”活动总结" in text and "一、主要成效" in text
    assert len(document.inline_shapes) == 3
    captions = [p.text for p in document.paragraphs if p.style.name == "Caption"]
    assert captions == ["每日投放", "品类构成", "职工在一楼大厅投放旧报纸"]
    figures = {row.cells[0].text: row.cells[1].text for row in document.tables[0].rows}
    assert figures["废纸（千克）"] == "2.5"


async def test_an_export_over_the_limit_is_refused_with_the_count(
    client: Client, world: World, campaign: dict[str, Any]
) -> None:
    text = "字" * 2001 + " \n" * 50
    saved = await client.put(
        url(world, campaign), json={"text": text, "pictures": []}, headers=world.headers["coord-a"]
    )
    assert saved.status_code == 200  # a draft may be over the limit while it is cut down
    answer = await client.get(
        url(world, campaign) + "&format=docx", headers=world.headers["coord-a"]
    )
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["characters"] == 2001 and problem["limit"] == 2000
    assert "2,001" in problem["detail"]


NOT_PHOTOS = [
    ("notes.txt", b"not a picture at all"),
    ("fake.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 64),  # a JPEG header, nothing more
    ("photo.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"),  # an image, not JPEG or PNG
]


async def test_non_images_and_unknown_pictures_are_refused(
    client: Client, world: World, campaign: dict[str, Any]
) -> None:
    for name, content in NOT_PHOTOS:
        answer = await client.post(
            url(world, campaign, "/photos"),
            files={"file": (name, content, "image/jpeg")},
            headers=world.headers["coord-a"],
        )
        assert answer.status_code == 415, (name, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    for pictures in (
        ["chart:daily"] * 2,
        ["chart:nonsense"],
        ["photo:000000000000aaaaaaaaaa"],
        ["chart:participation"],  # a platform chart, not a department's
        [f"chart:{n}" for n in range(7)],
    ):
        answer = await client.put(
            url(world, campaign),
            json={"text": "x", "pictures": pictures},
            headers=world.headers["coord-a"],
        )
        assert answer.status_code in (400, 422), (pictures, answer.text)


async def test_summaries_are_scoped_to_the_department(
    client: Client, world: World, campaign: dict[str, Any]
) -> None:
    other = await client.get(url(world, campaign), headers=world.headers["coord-b"])
    assert other.status_code == 404
    for who in ("emp-a", "auditor", "audit-a"):
        refused = await client.get(url(world, campaign), headers=world.headers[who])
        assert refused.status_code == 403, who
    written = await client.put(
        url(world, campaign), json={"text": "x", "pictures": []}, headers=world.headers["coord-b"]
    )
    assert written.status_code == 404
    by_admin = await client.put(
        url(world, campaign), json={"text": "x", "pictures": []}, headers=world.headers["admin"]
    )
    assert by_admin.status_code == 403
    bad_period = await client.get(
        f"/api/departments/{world.dept_a}/summary?from=2026-13-01&to=2026-07-01",
        headers=world.headers["coord-a"],
    )
    assert bad_period.status_code == 422
