"""The printable A4 page of a department's collection-point posters: one poster per sheet."""

from dataclasses import dataclass

from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from exchange import qr

_TEMPLATE = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<title>{{ department }} · 回收点二维码</title>
<link rel="stylesheet" href="/static/css/posters.css">
</head>
<body>
{% for poster in posters %}
<section class="poster">
  <p class="event">节能宣传周 · 云兑换</p>
  <h1>{{ poster.name }}</h1>
  {% if poster.location %}<p class="location">{{ poster.location }}</p>{% endif %}
  <div class="qr">{{ poster.svg }}</div>
  <p class="instruction">请用手机扫码，登记您投放的可回收物，兑换积分</p>
  <p class="department">{{ department }}</p>
  <p class="code">{{ poster.url }}</p>
</section>
{% else %}
<p class="empty">{{ department }} 还没有回收点。</p>
{% endfor %}
</body>
</html>
"""

_template = Environment(autoescape=select_autoescape(default=True)).from_string(_TEMPLATE)


@dataclass(frozen=True)
class Poster:
    name: str
    location: str
    url: str

    @property
    def svg(self) -> Markup:
        # Our own SVG markup, built from the URL by the qrcode package: safe to inline.
        return Markup(qr.svg_element(self.url))


def render(department: str, posters: list[Poster]) -> str:
    return _template.render(department=department, posters=posters)
