"""Product photos: checked by their content (not their name or declared type), then stored
under the data directory with a random name; the name says the format."""

import io
import secrets
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from catalog.errors import CatalogError

MAX_PHOTO_BYTES = 2 * 1024 * 1024
MAX_PIXELS = 40_000_000  # refuse decompression bombs long before Pillow's own limit
FORMATS = {
    "PNG": ("png", "image/png"),
    "JPEG": ("jpg", "image/jpeg"),
    "WEBP": ("webp", "image/webp"),
}
MEDIA_TYPES = {extension: media for extension, media in FORMATS.values()}


class PhotoRejected(CatalogError):
    title = "Photo rejected"


class PhotoTooLarge(PhotoRejected):
    title = "Photo too large"


def sniff(data: bytes) -> str:
    """The file extension of a PNG, JPEG or WebP image; anything else is refused."""
    if len(data) > MAX_PHOTO_BYTES:
        raise PhotoTooLarge(f"A photo may be at most {MAX_PHOTO_BYTES // 1024 // 1024} MB.")
    if not data:
        raise PhotoRejected("The photo is empty.")
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format
            width, height = image.size
            if kind in FORMATS and width * height <= MAX_PIXELS:
                image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise PhotoRejected("The file is not a readable PNG, JPEG or WebP image.") from None
    if kind not in FORMATS:
        raise PhotoRejected(f"Photos must be PNG, JPEG or WebP, not {kind}.")
    if width * height > MAX_PIXELS:
        raise PhotoRejected(f"The photo has {width}×{height} pixels; at most 40 megapixels.")
    return FORMATS[kind][0]


def photo_dir(data_dir: Path) -> Path:
    return data_dir / "photos"


def store(data_dir: Path, data: bytes) -> str:
    """Check and store a photo; returns its file name."""
    extension = sniff(data)
    name = f"{secrets.token_hex(16)}.{extension}"
    directory = photo_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)
    return name


def open_photo(data_dir: Path, name: str) -> tuple[Path, str] | None:
    """The stored file and its media type, if `name` is one of ours."""
    stem, _, extension = name.partition(".")
    if len(stem) != 32 or not all(c in "0123456789abcdef" for c in stem):
        return None
    if extension not in MEDIA_TYPES:
        return None
    path = photo_dir(data_dir) / name
    return (path, MEDIA_TYPES[extension]) if path.is_file() else None
