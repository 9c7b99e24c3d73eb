"""Errors the catalog raises; api/ maps each class to one problem response."""


class CatalogError(Exception):
    """Base: `title` is stable and short, the message says what exactly was wrong."""

    title = "Catalog error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(CatalogError):
    title = "Not found"


class InvalidCredentials(CatalogError):
    title = "Wrong username or password"

    def __init__(self) -> None:
        # One message for every cause, so a caller learns nothing about which part was wrong.
        super().__init__("The username or password is not correct.")


class SignInThrottled(CatalogError):
    """Too many attempts on one account from clients it does not know: wait, then try again."""

    title = "Too many sign-in attempts"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "Too many sign-in attempts for this account from unknown devices; "
            f"try again in {retry_after} s."
        )
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


class Conflict(CatalogError):
    title = "Conflict"


class DepartmentNotApproved(CatalogError):
    title = "Department not approved"


class InvalidStatusChange(CatalogError):
    title = "Invalid registration status change"


class InvalidField(CatalogError):
    title = "Invalid field"

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class ImportRejected(CatalogError):
    """A member CSV with at least one bad row; nothing of it was imported."""

    title = "Member import rejected"

    def __init__(self, errors: list[dict[str, object]]) -> None:
        super().__init__(f"{len(errors)} problem(s) in the file; nothing was imported.")
        self.errors = errors
