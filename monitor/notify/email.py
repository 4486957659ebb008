"""E-mail destination: one multipart (plain text + HTML, Jinja2 templates) message per alert, and per
digest (grouped by rule, with counts, snippets and links), over SMTP with STARTTLS, implicit TLS
(certificates verified) or, to a loopback server only, no TLS.

Untrusted text cannot become a header (CR/LF and other controls in the subject are folded to spaces)
and is escaped in the HTML, where only http(s) links are made. Recipients the server refuses while it
accepts others are recorded on the row; the accepted ones are not sent again."""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from monitor.errors import ClientError, ServerError, TransportError
from monitor.notify.destinations import DestinationModel, Destinations
from monitor.notify.digest_content import Digest
from monitor.store import queries
from monitor.store.db import Database
from monitor.store.outbox import Claim
from monitor.store.queries import MatchView

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_TEMPLATES = Environment(loader=PackageLoader("monitor.notify", "templates"),
                         autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
                         keep_trailing_newline=True)
SUBJECT_CHARS = 200
DIGEST_ITEMS_PER_RULE = 100  # articles listed under one rule of a digest; the rest are counted


def header_text(value: str, limit: int = SUBJECT_CHARS) -> str:
    """One line for a header: every line break and control character folded to a space."""
    folded = _CONTROL.sub(" ", value).strip()
    return folded if len(folded) <= limit else folded[: limit - 1] + "…"


def http_link(url: str | None) -> str | None:
    return url if url and url.lower().startswith(("http://", "https://")) else None


_STRONG_OPEN, _STRONG_CLOSE = Markup("<strong>"), Markup("</strong>")


def _bold(match: MatchView) -> Markup:
    """The snippet HTML-escaped, its matched terms in <strong>."""
    return Markup("").join(_STRONG_OPEN + escape(text) + _STRONG_CLOSE if term else escape(text)
                           for text, term in match.snippet_pieces())


def compose(matches: Sequence[MatchView], destination: DestinationModel, possible_duplicate: bool = False
            ) -> EmailMessage:
    first = matches[0]
    context = {
        "title": header_text(first.title or "(no title)", 1000), "link": http_link(first.url), "feed": first.feed,
        "published": f"{first.published:%Y-%m-%d %H:%M} UTC" if first.published else None,
        "possible_duplicate": possible_duplicate,
        "rules": [{"id": m.rule, "title": m.rule_title,
                   "snippet": str(m.explanation.get("snippet", "")),
                   "snippet_html": _bold(m),
                   "terms": sorted({str(h.get("term")) for h in hits if isinstance(h, dict)})}
                  for m in matches for hits in [m.explanation.get("hits") or []] if isinstance(hits, list)],
    }
    message = envelope(destination, header_text(f"[{', '.join(m.rule for m in matches)}] {first.title}"))
    message.set_content(_TEMPLATES.get_template("alert.txt.j2").render(context))
    message.add_alternative(_TEMPLATES.get_template("alert.html.j2").render(context), subtype="html")
    return message


def _digest_context(digest: Digest) -> dict[str, object]:
    return {
        "heading": digest.heading, "possible_duplicate": digest.possible_duplicate,
        "groups": [{
            "id": group.rule, "title": group.title, "count": len(group.matches),
            "more": max(len(group.matches) - DIGEST_ITEMS_PER_RULE, 0),
            "items": [{"title": header_text(m.title or "(no title)", 1000), "link": http_link(m.url), "feed": m.feed,
                       "published": f"{m.published:%Y-%m-%d %H:%M} UTC" if m.published else None,
                       "snippet": header_text(str(m.explanation.get("snippet", "")), 2000),
                       "snippet_html": _bold(m)}
                      for m in group.matches[:DIGEST_ITEMS_PER_RULE]],
        } for group in digest.groups],
    }


def digest_text(digest: Digest) -> str:
    """The digest as plain text (the e-mail's text part; the console destination prints it)."""
    return _TEMPLATES.get_template("digest.txt.j2").render(_digest_context(digest))


def compose_digest(digest: Digest, destination: DestinationModel) -> EmailMessage:
    context = _digest_context(digest)
    message = envelope(destination, header_text(f"[monitor] {digest.heading}"))
    message.set_content(_TEMPLATES.get_template("digest.txt.j2").render(context))
    message.add_alternative(_TEMPLATES.get_template("digest.html.j2").render(context), subtype="html")
    return message


def envelope(destination: DestinationModel, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = destination.sender or ""
    message["To"] = ", ".join(destination.to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=(destination.sender or "monitor@localhost").rsplit("@", 1)[-1])
    return message


class EmailNotifier:
    """Sends one claimed outbox row to its e-mail destination."""

    def __init__(self, db: Database, destinations: Destinations) -> None:
        self._db = db
        self._destinations = destinations

    def send(self, claim: Claim) -> None:
        destination = self._destination(claim.destination)
        matches = queries.claimed_matches(self._db, claim)
        if matches:
            self._deliver(destination, compose(matches, destination, claim.possible_duplicate))

    def send_digest(self, digest: Digest, parts_sent: int, part_done: Callable[[int], None]) -> None:
        """One message for the whole digest (one part)."""
        if parts_sent:
            return
        destination = self._destination(digest.destination)
        self._deliver(destination, compose_digest(digest, destination))

    def preview(self, digest: Digest) -> str:
        destination = self._destination(digest.destination)
        message = compose_digest(digest, destination)
        text = message.get_body(("plain",))
        return f"Subject: {message['Subject']}\nTo: {message['To']}\n\n{text.get_content() if text else ''}"

    def _destination(self, name: str) -> DestinationModel:
        destination = self._destinations.get(name)
        if destination is None or destination.kind != "email" or destination.smtp is None:
            raise ClientError(f"{name}: not an email destination", 400)
        return destination

    @staticmethod
    def _deliver(destination: DestinationModel, message: EmailMessage) -> None:
        refused = deliver_message(destination, message)
        if refused:
            raise PartlyRefused(refused)


class PartlyRefused(Exception):
    """The server took the message for some recipients and refused others: the row is done (the accepted
    ones must not get it twice) and the refused ones are recorded on it."""

    def __init__(self, refused: dict[str, tuple[int, bytes]]) -> None:
        super().__init__("refused recipients: " + "; ".join(
            f"{address} ({code} {reply.decode(errors='replace')})" for address, (code, reply) in refused.items()))


def deliver_message(destination: DestinationModel, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
    """Send over SMTP; return the recipients refused while others were accepted. Raise ServerError
    (transient: 4xx, connection trouble), ClientError (permanent: 5xx, every recipient refused, login)."""
    smtp = destination.smtp
    assert smtp is not None
    context = ssl.create_default_context()
    try:
        if smtp.tls == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        with client:
            if smtp.tls == "starttls":
                client.starttls(context=context)
            if smtp.username is not None and smtp.password is not None:
                client.login(smtp.username.get_secret_value(), smtp.password.get_secret_value())
            return dict(client.send_message(message))
    except smtplib.SMTPNotSupportedError as exc:
        raise ClientError(f"email {destination.name}: the server does not offer {smtp.tls.upper()}", 0) from exc
    except smtplib.SMTPRecipientsRefused as exc:
        raise ClientError(f"email {destination.name}: every recipient refused", 550) from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise ClientError(f"email {destination.name}: login refused ({exc.smtp_code})", exc.smtp_code) from exc
    except smtplib.SMTPResponseException as exc:
        code = exc.smtp_code
        if 400 <= code < 500:
            raise ServerError(f"email {destination.name}: SMTP {code}", code) from exc
        raise ClientError(f"email {destination.name}: SMTP {code}", code) from exc
    except ssl.SSLCertVerificationError as exc:
        raise ClientError(f"email {destination.name}: certificate not trusted ({exc.verify_message})", 0) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise TransportError(f"email {destination.name}: {type(exc).__name__}: {exc}") from exc
