"""What every benchmark prints: lines flushed as they come, and Markdown tables."""

import sys
from typing import Any


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out(f"\n### {title}\n")
    out("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    out("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells[1:]:
        out("| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |")
