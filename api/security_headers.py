"""Security headers on every response: a strict Content-Security-Policy (the app's own
scripts and styles only), no framing, no MIME sniffing, a same-origin referrer, and HSTS
when the service is served over HTTPS (EXCHANGE_SECURE_COOKIES).

A `before_send` hook rather than a middleware: it also sees the answers Litestar gives
before any route matched (404 pages, 405, errors), which route middleware never does.
"""

from collections.abc import Callable, Coroutine
from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data: blob:",
    "connect-src": "'self'",
    "media-src": "'self' blob:",  # the pickup desk's camera
    # The pickup desk's service worker (/coord/desk-sw.js) and web app manifest are the app's
    # own files: 'self' here and in default-src (manifest-src) admit them, nothing more.
    "worker-src": "'self'",
    "object-src": "'none'",
    "frame-ancestors": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
}

# Where a vendored library needs more, its page alone gets it; scripts stay the app's files.
POLICY_BY_PREFIX = {
    # Redoc injects its styles at run time and searches in a worker made from a blob.
    "/schema": {**POLICY, "style-src": "'self' 'unsafe-inline'", "worker-src": "'self' blob:"},
    # qr-scanner decodes the camera's frames in a worker made from a blob.
    "/coord/pickup": {**POLICY, "worker-src": "'self' blob:"},
}


def _render(policy: dict[str, str]) -> str:
    return "; ".join(f"{name} {value}" for name, value in policy.items())


def security_headers(
    https: bool,
) -> Callable[[Message, Scope], Coroutine[Any, Any, None]]:
    common = {
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
    }
    if https:
        common["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    strict = _render(POLICY)
    special = {prefix: _render(policy) for prefix, policy in POLICY_BY_PREFIX.items()}

    async def add_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = MutableScopeHeaders.from_message(message)
        for name, value in common.items():
            headers[name] = value
        path = scope.get("path", "")
        policy = next((p for prefix, p in special.items() if path.startswith(prefix)), strict)
        headers["Content-Security-Policy"] = policy

    return add_headers
