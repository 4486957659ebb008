"""Dedupe stage: canonical URLs and stable entry keys (GUID, else canonical URL, else title + date)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "gclsrc", "msclkid", "yclid", "mc_cid", "mc_eid", "igshid",
     "_hsenc", "_hsmi", "mkt_tok", "ref_src", "cmpid", "ncid", "ocid", "spm"}
)


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith(("utm_", "at_")) or lowered in TRACKING_PARAMS


def canonical_url(url: str | None) -> str | None:
    """Lower-case scheme and host, drop default ports, fragments and tracking parameters."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return url
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)]
    return urlunsplit((scheme, host, parts.path or "/", urlencode(query, doseq=True), ""))


def entry_key(guid: str | None, url: str | None, title: str, published: datetime | None) -> tuple[str, str]:
    """Return (key, kind). The key is what the database's per-feed unique constraint holds."""
    if guid and guid.strip():
        return "guid:" + guid.strip()[:500], "guid"
    canonical = canonical_url(url)
    if canonical:
        return "url:" + canonical[:1000], "url"
    stamp = published.isoformat() if published else ""
    digest = hashlib.sha256(f"{title.strip()}\x00{stamp}".encode()).hexdigest()
    return "td:" + digest, "title_date"


def article_key(canonical: str | None, feed_name: str, key: str) -> str:
    """Articles are shared across feeds by canonical URL; link-less entries get one of their own."""
    if canonical:
        return canonical[:1000]
    return "entry:" + hashlib.sha256(f"{feed_name}\x00{key}".encode()).hexdigest()
