"""The API documentation page at /schema: the vendored Redoc, with no inline script.

Litestar's Redoc page inlines the schema in a <script>; under the Content-Security-Policy
(api/security_headers.py) only the app's own script files run, so the page loads Redoc and
a small starter from /static, and Redoc fetches the schema from /schema/openapi.json.
"""

from html import escape
from typing import Any

from litestar import Request
from litestar.openapi.plugins import RedocRenderPlugin


class SelfHostedRedoc(RedocRenderPlugin):
    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = escape(openapi_schema["info"]["title"])
        spec_url = escape(self.get_openapi_json_route(request))
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/css/redoc.css">
<script src="{escape(self.js_url)}" defer></script>
<script src="/static/js/redoc-start.js" defer></script>
</head>
<body><div id="redoc-container" data-spec-url="{spec_url}"></div></body>
</html>
""".encode()
