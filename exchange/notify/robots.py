"""Group robots of WeCom (企业微信), DingTalk (钉钉) and Feishu (飞书): the address each gives,
how a text message is posted to it, how it is signed, and what its answers mean.

Followed, per platform (read when this was written):

- WeCom, 群机器人配置说明 (developer.work.weixin.qq.com/document/path/91770): POST JSON
  `{"msgtype": "text", "text": {"content": …}}` (at most 2048 bytes of UTF-8) to
  `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY`; at most 20 messages a minute per
  robot. Answers `{"errcode": 0, "errmsg": "ok"}`; 45009 is the frequency limit, 93000 an
  invalid webhook address. No signing: the key in the address is the credential.
- DingTalk, 自定义机器人发送群消息 / 安全设置 (open.dingtalk.com/document/orgapp/
  custom-robot-access): with 加签, `timestamp` is the time in milliseconds and
  `sign = urlEncode(base64(HmacSHA256(key=secret, message=timestamp + "\\n" + secret)))`, both
  appended to `https://oapi.dingtalk.com/robot/send?access_token=TOKEN`; the timestamp must be
  within an hour of DingTalk's clock. POST `{"msgtype": "text", "text": {"content": …}}`.
  Answers `{"errcode": 0}`; 130101 is "send too fast" (20 a minute), 310000 a failed
  security check (signature, keyword or IP).
- Feishu, 自定义机器人使用指南 (open.feishu.cn/document/client-docs/bot-v3/add-custom-bot):
  with 签名校验, `timestamp` is the time in seconds and `sign =
  base64(HmacSHA256(key=timestamp + "\\n" + secret, message=""))` — the string is the key and
  the message is empty, unlike DingTalk — sent in the body beside
  `{"msg_type": "text", "content": {"text": …}}` to
  `https://open.feishu.cn/open-apis/bot/v2/hook/TOKEN` (Lark: open.larksuite.com); the body
  is at most 20 KB; 100 requests a minute and 5 a second per robot. Answers `{"code": 0}`;
  19021 is a failed signature or a timestamp over an hour off, 19022 an address not allowed,
  19024 a missing keyword, 9499 a malformed request, 11232 (or HTTP 429) the frequency limit.
"""

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import httpx

from exchange.notify.models import Channel


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: sent, or failed with a reason; `retry` says whether trying again
    later can help (the platform was busy or unreachable) or not (the robot is set up wrong,
    which a coordinator must fix before resending)."""

    sent: bool
    error: str = ""
    retry: bool = False


SENT = Outcome(sent=True)

TOKEN = re.compile(r"^[A-Za-z0-9_-]{8,128}$")


@dataclass(frozen=True)
class RobotKind:
    channel: Channel
    label: str
    hosts: tuple[str, ...]
    path: str  # the path, or for Feishu the path the token follows
    token_in_query: str | None  # the query parameter holding the token; None: in the path
    signs: bool  # whether the robot can have a signing secret
    example: str

    def token_of(self, url: str) -> str | None:
        """The robot's token in a webhook address of this kind, or None if it has none."""
        parts = urlsplit(url)
        if self.token_in_query is None:
            if not parts.path.startswith(self.path) or parts.query:
                return None
            token = parts.path.removeprefix(self.path)
        else:
            if parts.path != self.path:
                return None
            values = parse_qs(parts.query).get(self.token_in_query, [])
            token = values[0] if len(values) == 1 else ""
        return token if TOKEN.match(token) else None


KINDS: dict[str, RobotKind] = {
    Channel.wecom: RobotKind(
        Channel.wecom,
        "WeCom",
        ("qyapi.weixin.qq.com",),
        "/cgi-bin/webhook/send",
        "key",
        signs=False,
        example="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…",
    ),
    Channel.dingtalk: RobotKind(
        Channel.dingtalk,
        "DingTalk",
        ("oapi.dingtalk.com",),
        "/robot/send",
        "access_token",
        signs=True,
        example="https://oapi.dingtalk.com/robot/send?access_token=…",
    ),
    Channel.feishu: RobotKind(
        Channel.feishu,
        "Feishu",
        ("open.feishu.cn", "open.larksuite.com"),
        "/open-apis/bot/v2/hook/",
        None,
        signs=True,
        example="https://open.feishu.cn/open-apis/bot/v2/hook/…",
    ),
}

WECOM_MAX_BYTES = 2048
FEISHU_MAX_BYTES = 20_000  # the body, of which the text is nearly all


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签: HMAC-SHA256 keyed with the secret over "timestamp\\nsecret", base64,
    then URL-encoded (the caller puts it in the query as it is)."""
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return quote_plus(base64.b64encode(digest).decode())


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's 签名校验: HMAC-SHA256 keyed with "timestamp\\nsecret" over nothing, base64."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _clip(text: str, limit: int) -> str:
    """At most `limit` bytes of UTF-8, cut on a character boundary."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "…"


def request_for(
    kind: str, url: str, secret: str | None, text: str, now: datetime
) -> tuple[str, Any]:
    """The address (with DingTalk's signature in it) and the JSON body of one text message."""
    if kind == Channel.wecom:
        return url, {"msgtype": "text", "text": {"content": _clip(text, WECOM_MAX_BYTES)}}
    if kind == Channel.dingtalk:
        body = {"msgtype": "text", "text": {"content": text}}
        if secret:
            ms = int(now.timestamp() * 1000)
            url = f"{url}&timestamp={ms}&sign={dingtalk_sign(secret, ms)}"
        return url, body
    body = {"msg_type": "text", "content": {"text": _clip(text, FEISHU_MAX_BYTES)}}
    if secret:
        seconds = int(now.timestamp())
        body = {"timestamp": str(seconds), "sign": feishu_sign(secret, seconds), **body}
    return url, body


# Answers that mean "busy, try later" rather than "this robot is set up wrong".
RATE_LIMITED = {Channel.wecom: {45009, -1}, Channel.dingtalk: {130101, -1}, Channel.feishu: {11232}}


def outcome_of(kind: str, response: httpx.Response) -> Outcome:
    if response.status_code == 429 or response.status_code >= 500:
        return Outcome(False, f"HTTP {response.status_code}", retry=True)
    try:
        answer = response.json()
        code = answer.get("errcode", answer.get("code")) if isinstance(answer, dict) else None
    except ValueError:
        answer, code = None, None
    if response.status_code == 200 and code == 0:
        return SENT
    if code is None:
        return Outcome(False, f"HTTP {response.status_code}, not the platform's answer")
    message = str(answer.get("errmsg", answer.get("msg", "")))[:200]  # type: ignore[union-attr]
    return Outcome(
        False, f"{KINDS[kind].label} error {code}: {message}", code in RATE_LIMITED[kind]
    )


async def post(
    client: httpx.AsyncClient, kind: str, url: str, secret: str | None, text: str, now: datetime
) -> Outcome:
    """Post one text message to a robot. Network failures and timeouts are worth a retry."""
    address, body = request_for(kind, url, secret, text, now)
    try:
        response = await client.post(address, json=body)
    except httpx.HTTPError as error:
        return Outcome(False, f"{KINDS[kind].label} unreachable: {type(error).__name__}", True)
    return outcome_of(kind, response)
