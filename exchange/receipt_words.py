"""What a ledger entry did to an employee's account, in plain words: the line each receipt
shows (the receipts page, the API's `description`, `exchange receipt verify`). It reads only
the entry's canonical JSON object, so an offline verifier tells what it proved from the
signed bytes themselves. Imports nothing of the service, so that verifier starts fast.

The words are English gettext message ids, translated by the service's one catalog
(api/locale); the caller passes the catalog of the language it wants. The references are
the exchange's own (exchange/points.py, exchange/expiry.py)."""

import gettext
from collections.abc import Mapping
from typing import Any


def describe(entry: Mapping[str, Any], account: str, translations: gettext.NullTranslations) -> str:
    """What ``entry`` (its canonical JSON object) did to ``account``, in plain words."""
    _ = translations.gettext
    kind, reference, points = entry["kind"], entry["reference"], {"points": entry["amount"]}
    credited = entry["credit_account"] == account
    if kind == "reversal":
        return _("Correction of entry %(ref)d: %(points)d points") % {
            "ref": entry["ref_seq"],
            **points,
        }
    if reference.startswith("dropoff:") and credited:
        text = {
            "direct": _("Drop-off credited: %(points)d points"),
            "pending": _("Drop-off recorded, waiting for a coordinator: %(points)d points pending"),
            "post": _("Drop-off confirmed: %(points)d points credited"),
            "void": _("Drop-off rejected: %(points)d pending points withdrawn"),
        }.get(kind)
    elif reference.startswith("order:") and not credited:
        text = {
            "pending": _("Order placed: %(points)d points held"),
            "post": _("Order picked up: %(points)d points spent"),
            "void": _("Order cancelled or expired: %(points)d held points released"),
        }.get(kind)
    elif reference.startswith("expiry:") and not credited:
        text = _("Points expired: %(points)d points")
    else:
        text = None
    if text is None:
        text = _("%(points)d points credited") if credited else _("%(points)d points debited")
    return text % points
