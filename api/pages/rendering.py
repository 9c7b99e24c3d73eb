"""Rendering a page: the template, its language, the signed-in user and the navigation."""

import gettext
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from litestar import Request
from litestar.response import Redirect, Template

from api import i18n
from catalog.identity import Identity
from catalog.models import Role


def identity_of(request: Request[Any, Any, Any]) -> Identity | None:
    """The signed-in user, or None on the pages open to everyone (where auth does not run)."""
    user = request.scope.get("user")
    return user if isinstance(user, Identity) else None


def language_of(request: Request[Any, Any, Any]) -> str:
    cached = request.scope.get("state", {}).get("language")
    if cached:
        return cached
    identity = identity_of(request)
    language = i18n.negotiate(
        request.cookies.get(i18n.LANGUAGE_COOKIE),
        identity.language if identity else None,
        request.headers.get("accept-language"),
    )
    request.scope.setdefault("state", {})["language"] = language
    return language


def translator(request: Request[Any, Any, Any]) -> gettext.NullTranslations:
    return i18n.translations(language_of(request))


@dataclass(frozen=True)
class NavLink:
    href: str
    label: str


def navigation(request: Request[Any, Any, Any], identity: Identity | None) -> list[NavLink]:
    if identity is None:
        return []
    _ = translator(request).gettext
    links: list[NavLink] = []
    if identity.has(Role.employee):
        links += [
            NavLink("/home", _("My points")),
            NavLink("/catalog", _("Products")),
            NavLink("/orders", _("My orders")),
            NavLink("/me/receipts", _("My receipts")),
            NavLink("/me/notifications", _("Notifications")),
        ]
    if identity.has(Role.coordinator):
        links += [
            NavLink("/coord/dropoffs", _("Drop-offs")),
            NavLink("/coord/pickup", _("Pickup desk")),
            NavLink("/coord/incidents", _("Incidents")),
            NavLink("/coord/products", _("Village catalog")),
            NavLink("/coord/members", _("Members")),
            NavLink("/coord/stations", _("Stations")),
            NavLink("/coord/dashboard", _("Today")),
            NavLink("/coord/report", _("Report")),
            NavLink("/coord/summary", _("Summary")),
            NavLink("/coord/messages", _("Messages")),
        ]
    if identity.has(Role.auditor):
        links += [
            NavLink("/audit/ledger", _("Ledger")),
            NavLink("/audit/balances", _("Balances")),
            NavLink("/audit/tree-head", _("Tree head")),
            NavLink("/audit/report", _("Report")),
        ]
    if identity.has(Role.admin):
        links += [
            NavLink("/admin/departments", _("Departments")),
            NavLink("/admin/campaigns", _("Campaigns")),
            NavLink("/admin/report", _("Platform report")),
            NavLink("/admin/summary", _("Platform summary")),
            NavLink("/admin/co2e-factors", _("CO2e factors")),
            NavLink("/admin/messages", _("Messages")),
        ]
    return links


def page(
    request: Request[Any, Any, Any],
    template: str,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    language = language_of(request)
    identity = identity_of(request)
    return Template(
        template_name=template,
        status_code=status_code,
        headers=headers,
        context={
            **i18n.template_callables(language),
            "lang": language,
            "html_lang": "zh-Hans" if language == "zh" else "en",
            "languages": i18n.LANGUAGES,
            "user": identity,
            "nav": navigation(request, identity),
            "path": request.url.path,
            "here": here(request),
            **context,
        },
    )


def here(request: Request[Any, Any, Any]) -> str:
    """This page's path and query: where to come back to after signing in or switching language."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def safe_next(target: str | None, default: str = "/start") -> str:
    """Only a path on this site: an absolute or protocol-relative URL would be an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def redirect(path: str) -> Redirect:
    # 303: after a form post the browser follows with GET, so reload does not repost.
    return Redirect(path=path, status_code=303)


def login_url(request: Request[Any, Any, Any]) -> str:
    return "/login?next=" + quote(here(request), safe="/")
