"""A fake Slack on 127.0.0.1 that slack-sdk talks to (webhook URLs and the Web API base_url): it records
every POST and answers from a script (429 with Retry-After, 5xx, 4xx, or a stall), else success, unless
the message breaks Slack's size limits (400 invalid_blocks, counted in ``oversize``)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    stall: float = 0.0


def _text(block: dict[str, Any]) -> str:
    if isinstance(block.get("text"), dict):
        return str(block["text"].get("text", ""))
    return "".join(str(e.get("text", "")) for e in block.get("elements", []))


def _oversize(body: dict[str, Any]) -> bool:
    """Beyond Slack's limits: more than 50 blocks, a section over 3,000 characters, a message over 4,000."""
    blocks = body.get("blocks") or []
    texts = [_text(b) for b in blocks]
    return len(blocks) > 50 or any(len(t) > 3000 for t in texts) or sum(map(len, texts)) > 4000


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeSlack  # type: ignore[assignment]

    def log_message(self, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length).decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            body = json.loads(raw)
        else:  # the Web API client posts forms
            from urllib.parse import parse_qsl

            body = dict(parse_qsl(raw))
            if "blocks" in body:
                body["blocks"] = json.loads(body["blocks"])
        srv = self.server
        with srv.lock:
            srv.posts.append((self.path, dict(self.headers), body))
            srv.times.append(time.monotonic())
            script = srv.script.get(self.path, [])
            answer = script.pop(0) if script else None
            if answer is None and _oversize(body):  # as Slack does: never expected to happen
                srv.oversize += 1
                answer = Answer(400, "invalid_blocks")
        if answer is None:
            answer = Answer(body=json.dumps({"ok": True}) if self.path.startswith("/api/") else "ok")
        if answer.stall:
            time.sleep(answer.stall)
        data = answer.body.encode()
        self.send_response(answer.status)
        for key, value in answer.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FakeSlack(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.posts: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.times: list[float] = []  # time.monotonic() of each post
        self.oversize = 0  # messages refused for breaking Slack's size limits
        self.script: dict[str, list[Answer]] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def base(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def to(self, path: str) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
        return [p for p in self.posts if p[0] == path]
