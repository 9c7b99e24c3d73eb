"""Which text the databases can store: PostgreSQL refuses NUL (U+0000) in text, and neither
database can encode a lone surrogate (U+D800-U+DFFF). Every input is checked against this
before it can reach a query: HTTP input in api/boundary.py, uploaded files where they are read."""

import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable_character(text: str) -> str | None:
    """The first character no database here can store, as U+XXXX; None when all can be."""
    found = _UNSTORABLE.search(text)
    return f"U+{ord(found.group()):04X}" if found else None
