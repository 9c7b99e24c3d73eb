"""OpenAPI for the routes that answer images: a handler declares one media type, which cannot
say "PNG or JPEG", so the operation lists both for its success answer. Litestar describes a
file's Last-Modified header as an RFC 3339 date-time; HTTP sends an HTTP-date (RFC 9110)."""

from dataclasses import dataclass, replace

from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Schema,
)

IMAGE_TYPES = ("image/png", "image/jpeg")


@dataclass
class ImageOperation(Operation):
    def __post_init__(self) -> None:
        for status, response in (self.responses or {}).items():
            if not (status.startswith("2") and isinstance(response, OpenAPIResponse)):
                continue
            declared = next(iter((response.content or {}).values()), OpenAPIMediaType())
            response.content = {
                media_type: OpenAPIMediaType(schema=declared.schema) for media_type in IMAGE_TYPES
            }
            for name, header in (response.headers or {}).items():
                if isinstance(header, OpenAPIHeader) and isinstance(header.schema, Schema):
                    if header.schema.format is not None and name.lower() == "last-modified":
                        header.schema = replace(header.schema, format=None)
                        header.description = (
                            "An HTTP-date (RFC 9110), e.g. Sun, 06 Nov 1994 08:49:37 GMT"
                        )
