"""Stand-ins for the platforms, as real servers on this machine.

`Robots` is an HTTP server (uvicorn) that answers as WeCom, DingTalk and Feishu group robots
do: it checks each request's address, body and signature the way the platform's
documentation describes (computed here independently of exchange/notify/robots.py), and
answers their success, their error codes and their rate limits. `Mailbox` is an SMTP server
(aiosmtpd) that keeps what it receives.
"""

import asyncio
import base64
import contextlib
import email
import email.policy
import hashlib
import hmac
import json
import re
import threading
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.foundation.test_ops import free_port

# Delivery ids as the worker puts them at the end of a robot's text.
DELIVERY_ID = re.compile(r"([0-9a-f]{22})\s*$")


@dataclass
class Received:
    kind: str
    token: str
    text: str

    @property
    def delivery_id(self) -> str | None:
        found = DELIVERY_ID.search(self.text)
        return found.group(1) if found else None


@dataclass
class Robots:
    """Robots keyed by token: their signing secrets (None: unsigned)."""

    secrets: dict[str, str | None] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    refused: list[tuple[str, int]] = field(default_factory=list)
    # Answers to give instead of success, in order, per kind: (HTTP status, JSON body).
    scripted: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    # While set, a request waits for `release` before it is taken (a worker dying mid-send).
    # The server runs on a thread of its own (so that the app under test, whichever event
    # loop it runs on, gets its answers): these are threads' events.
    hold: bool = False
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    got: threading.Condition = field(default_factory=threading.Condition)
    port: int = 0

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, kind: str, token: str) -> str:
        base = f"http://{self.netloc}"
        return {
            "wecom": f"{base}/cgi-bin/webhook/send?key={token}",
            "dingtalk": f"{base}/robot/send?access_token={token}",
            "feishu": f"{base}/open-apis/bot/v2/hook/{token}",
        }[kind]

    def script(self, kind: str, *answers: tuple[int, dict[str, Any]]) -> None:
        self.scripted.setdefault(kind, []).extend(answers)

    async def wait_for(self, count: int) -> None:
        """Until `count` messages were taken (raises after two minutes: a hang)."""

        def wait() -> bool:
            with self.got:
                return self.got.wait_for(lambda: len(self.received) >= count, 120)

        if not await asyncio.to_thread(wait):
            raise AssertionError(f"{len(self.received)} of {count} messages arrived")

    # --- the platforms ---------------------------------------------------------------------

    def _answer(
        self, kind: str, token: str, body: Any, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any]]:
        ok = {"wecom": {"errcode": 0, "errmsg": "ok"}, "dingtalk": {"errcode": 0, "errmsg": "ok"},
              "feishu": {"code": 0, "msg": "success", "data": {}}}[kind]  # fmt: skip
        if token not in self.secrets:
            return 200, {
                "wecom": {"errcode": 93000, "errmsg": "invalid webhook url"},
                "dingtalk": {"errcode": 300001, "errmsg": "token is not exist"},
                "feishu": {"code": 19001, "msg": "param invalid: incoming webhook access token"},
            }[kind]
        secret = self.secrets[token]
        if kind == "wecom":
            text = body.get("text", {}).get("content")
            if (
                body.get("msgtype") != "text"
                or not isinstance(text, str)
                or len(text.encode()) > 2048
            ):
                return 200, {"errcode": 40008, "errmsg": "invalid message type"}
        elif kind == "dingtalk":
            if secret is not None and not _dingtalk_signed(secret, query):
                return 200, {"errcode": 310000, "errmsg": "sign not match"}
            text = body.get("text", {}).get("content")
            if body.get("msgtype") != "text" or not isinstance(text, str):
                return 200, {"errcode": 40035, "errmsg": "缺少参数 json"}
        else:
            if secret is not None and not _feishu_signed(secret, body):
                return 200, {"code": 19021, "msg": "sign match fail or timestamp is not within "
                             "one hour from current time"}  # fmt: skip
            text = body.get("content", {}).get("text")
            if body.get("msg_type") != "text" or not isinstance(text, str):
                return 400, {"code": 9499, "msg": "Bad Request", "data": {}}
        if self.scripted.get(kind):
            return self.scripted[kind].pop(0)
        self.received.append(Received(kind, token, text))
        return 200, ok

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            event = await receive()
            chunks.append(event.get("body", b""))
            if not event.get("more_body"):
                break
        path, query = scope["path"], parse_qs(scope["query_string"].decode())
        if self.hold:
            self.arrived.set()
            await asyncio.to_thread(self.release.wait)
        try:
            body = json.loads(b"".join(chunks))
        except ValueError:
            body = None
        if path == "/cgi-bin/webhook/send":
            kind, token = "wecom", query.get("key", [""])[0]
        elif path == "/robot/send":
            kind, token = "dingtalk", query.get("access_token", [""])[0]
        elif path.startswith("/open-apis/bot/v2/hook/"):
            kind, token = "feishu", path.rsplit("/", 1)[1]
        else:
            await _respond(send, 404, {"error": "no such robot address"})
            return
        if scope["method"] != "POST" or not isinstance(body, dict):
            await _respond(send, 400, {"errcode": 40035, "code": 9499, "msg": "Bad Request"})
            return
        with self.got:
            status, answer = self._answer(kind, token, body, query)
            if answer.get("errcode", answer.get("code")) != 0:
                self.refused.append((kind, answer.get("errcode", answer.get("code"))))
            self.got.notify_all()
        await _respond(send, status, answer)


def _dingtalk_signed(secret: str, query: dict[str, list[str]]) -> bool:
    """DingTalk's check: the millisecond timestamp within an hour, and the sign equal to
    base64(HmacSHA256(secret, timestamp + "\\n" + secret)) once URL-decoded."""
    try:
        timestamp = query["timestamp"][0]
        # parse_qs decoded the query once; the sign was URL-encoded once, so compare
        # what the server decodes with the plain base64 it computes.
        sign = query["sign"][0]
    except (KeyError, IndexError):
        return False
    if abs(time.time() * 1000 - int(timestamp)) > 3600_000:
        return False
    mac = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
    return hmac.compare_digest(sign, base64.b64encode(mac.digest()).decode())


def _feishu_signed(secret: str, body: dict[str, Any]) -> bool:
    """Feishu's check: the second timestamp within an hour, and the sign equal to
    base64(HmacSHA256(key=timestamp + "\\n" + secret, message=empty))."""
    timestamp, sign = body.get("timestamp"), body.get("sign")
    if not isinstance(timestamp, str) or not isinstance(sign, str):
        return False
    if abs(time.time() - int(timestamp)) > 3600:
        return False
    mac = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256)
    return hmac.compare_digest(sign, base64.b64encode(mac.digest()).decode())


async def _respond(send: Any, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json; charset=utf-8")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class _Server(uvicorn.Server):
    """uvicorn's server, telling when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = threading.Event()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        self.listening.set()


@contextlib.asynccontextmanager
async def robot_server() -> AsyncIterator[Robots]:
    robots = Robots(port=free_port())
    config = uvicorn.Config(
        robots, host="127.0.0.1", port=robots.port, lifespan="off", log_level="warning"
    )
    server = _Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    await asyncio.to_thread(server.listening.wait, 30)
    try:
        yield robots
    finally:
        robots.release.set()
        server.should_exit = True
        await asyncio.to_thread(thread.join, 30)


# --- e-mail ----------------------------------------------------------------------------------


@dataclass
class Mail:
    mail_from: str
    to: list[str]
    message: EmailMessage

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"]).strip("<>").split("@")[0]

    @property
    def text(self) -> str:
        return self.message.get_content()


@dataclass
class Mailbox:
    port: int = 0
    username: str = "exchange"
    password: str = "smtp-pass-7"
    received: list[Mail] = field(default_factory=list)
    # SMTP answers to give to DATA instead of "250", in order (e.g. "451 4.3.0 try later").
    scripted: list[str] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.scripted:
            return self.scripted.pop(0)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (
            self.username,
            self.password,
        )
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok)


@contextlib.contextmanager
def mail_server() -> Any:
    mailbox = Mailbox(port=free_port())
    # AUTH without TLS: on this machine's loopback only, where no certificate is needed.
    warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=mailbox.port,
        authenticator=mailbox.authenticate,
        auth_require_tls=False,  # no certificate here; the client sends AUTH in the clear
        auth_required=True,
    )
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()
