"""Whatever the report and summary routes receive, the answer is a page, a redirect or a
problem document, never a server error; on both databases."""

import re
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import World
from tests.exchange.helpers import Client, open_campaign
from tests.pages.test_forms_never_fail import ODD

# The values that reach these routes' code differently: empty, blank, a sign, NUL (which
# PostgreSQL refuses to compare), markup and very long text.
ODD_HERE = [odd for odd in ODD if odd in ("", " ", "-1", "\x00", "<script>alert(1)</script>")]
ODD_HERE.append(max(ODD, key=len))


@pytest.fixture
async def campaign(client: Client, world: World) -> dict[str, Any]:
    return await open_campaign(client, world.headers["admin"], policy="auto")


async def no_server_error(client: Client, method: str, path: str, **kwargs: Any) -> None:
    answer = await client.request(method, path, follow_redirects=False, **kwargs)
    assert answer.status_code < 500, (method, path, kwargs, answer.text[:500])
    assert "Traceback" not in answer.text


async def test_odd_input_never_gets_a_server_error(
    client: Client, world: World, campaign: dict[str, Any]
) -> None:
    coordinator, dept = world.headers["coord-a"], world.dept_a
    period = f"campaign={campaign['id']}"
    page = await client.get(f"/coord/summary?{period}", headers=coordinator)
    csrf = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    form = {"_csrf_token": csrf.group(1)}
    for odd in ODD_HERE:
        url = quote(odd, safe="") or "x"
        for path in (
            f"/coord/report?campaign={url}",
            f"/coord/report?from={url}&to={url}",
            f"/coord/summary?from=2026-07-01&to={url}",
            f"/coord/summary/print?campaign={url}",
            f"/coord/summary/export.docx?campaign={url}",
            f"/coord/summary/photos/{url}",
            f"/api/departments/{dept}/summary?campaign={url}",
            f"/api/departments/{url}/summary?{period}",
            f"/api/departments/{dept}/summary?{period}&format={url}&language={url}",
            f"/api/departments/{dept}/summary/photos/{url}",
        ):
            await no_server_error(client, "GET", path, headers=coordinator)
        for path in (
            f"/admin/report?department={url}&sort={url}&desc={url}&{period}",
            f"/audit/report?department={url}&{period}",
        ):
            await no_server_error(client, "GET", path, headers=world.headers["admin"])
        await no_server_error(
            client,
            "PUT",
            f"/api/departments/{dept}/summary?{period}",
            json={"text": odd, "pictures": [odd]},
            headers=coordinator,
        )
        await no_server_error(
            client,
            "PUT",
            f"/api/departments/{dept}/summary?{period}",
            json={"text": odd, "pictures": []},
            headers=coordinator,
        )
        await no_server_error(
            client,
            "POST",
            f"/api/departments/{dept}/summary/photos?{period}",
            files={"file": ("x.png", odd.encode(), "image/png")},
            data={"caption": odd},
            headers=coordinator,
        )
        await no_server_error(
            client,
            "POST",
            f"/coord/summary?{period}",
            data={**form, "text": odd, "pictures": odd},
            headers=coordinator,
        )
        await no_server_error(
            client,
            "POST",
            f"/coord/summary/photos?{period}",
            data={**form, "caption": odd},
            files={"photo": ("x.jpg", odd.encode() or b"\xff", "image/jpeg")},
            headers=coordinator,
        )
