"""A real SMTP server (aiosmtpd) on 127.0.0.1 for the e-mail tests: keeps every message and when it came,
refuses recipients at refused.test, and can answer DATA from a script first (a reply such as
"451 4.3.0 try again later", or "drop" to close the connection in the middle of DATA)."""

from __future__ import annotations

import email
import email.policy
import time
from typing import Any

from aiosmtpd.controller import Controller


class Mailbox:
    def __init__(self, script: list[str] | None = None) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.times: list[float] = []  # time.monotonic() of each message
        self.script = list(script or [])

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.endswith("@refused.test"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.script:
            answer = self.script.pop(0)
            if answer == "drop":
                server.transport.close()
                return "250 never seen"
            return answer
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        self.times.append(time.monotonic())
        return "250 Message accepted"


def start(box: Mailbox, port: int, **options: Any) -> Controller:
    """aiosmtpd serving ``box`` on 127.0.0.1:``port`` (``options``: authenticator, auth_require_tls...)."""
    controller = Controller(box, hostname="127.0.0.1", port=port, **options)
    controller.start()
    return controller
