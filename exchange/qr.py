"""QR codes of collection-point posters and pickup tokens, as PNG and SVG."""

import io

import qrcode
import qrcode.constants
from qrcode.image.pil import PilImage
from qrcode.image.svg import SvgPathFillImage

# Medium error correction: survives a creased or partly covered poster, keeps modules large.
ERROR_CORRECTION = qrcode.constants.ERROR_CORRECT_M
QUIET_ZONE = 4  # modules of white border the QR standard asks for
DEFAULT_BOX_PX = 8
MIN_BOX_PX = 2
MAX_BOX_PX = 20


def _code(url: str, box_size: int) -> qrcode.QRCode:  # type: ignore[type-arg]
    code = qrcode.QRCode(error_correction=ERROR_CORRECTION, box_size=box_size, border=QUIET_ZONE)
    code.add_data(url)
    code.make(fit=True)
    return code


def png(url: str, box_size: int = DEFAULT_BOX_PX) -> bytes:
    """A black-on-white PNG with `box_size` pixels per module."""
    box_size = max(MIN_BOX_PX, min(MAX_BOX_PX, box_size))
    image = _code(url, box_size).make_image(image_factory=PilImage)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue()


def svg(url: str) -> str:
    """A standalone SVG document (white background) that scales to any size."""
    image = _code(url, 10).make_image(image_factory=SvgPathFillImage)
    return image.to_string(encoding="unicode")


def svg_element(url: str) -> str:
    """The `<svg>` element alone, for inlining into an HTML page."""
    document = svg(url)
    return document[document.index("<svg") :]
