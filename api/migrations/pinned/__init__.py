"""SQL that a migration ran, rendered by code that has changed since: pinned here, so that the
migration (and a later one's downgrade back to it) runs exactly as it did."""

from pathlib import Path

HERE = Path(__file__).resolve().parent


def statements(name: str, dialect: str) -> list[str]:
    """The statements of `<name>_<dialect>.sql`, after its header comment, separated by the
    line `-- next statement`."""
    text = (HERE / f"{name}_{dialect}.sql").read_text()
    body = text.split("\n\n", 1)[1]
    return [s.strip() for s in body.split("\n-- next statement\n") if s.strip()]
