"""Point an SDK's ``requests`` session at another base URL (the loopback X API sandbox).

tweepy hard-codes ``https://api.twitter.com``; rather than patching tweepy, the lowest layer,
the HTTP transport of its ``requests.Session``, rewrites the scheme and host of each request.
Everything above it (tweepy's paths, params, auth, streaming, backoff) runs unchanged over real
HTTP.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

X_API_HOSTS = ("https://api.twitter.com", "https://api.x.com")


class RebaseAdapter(HTTPAdapter):
    """An HTTPAdapter that sends every request to ``base_url`` keeping path and query."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) base URL: {base_url!r}")
        self._scheme = parts.scheme
        self._netloc = parts.netloc

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(request.url or "")
        request.url = urlunsplit((self._scheme, self._netloc, parts.path, parts.query, ""))
        return super().send(request, **kwargs)


def rebase_session(session: requests.Session, base_url: str | None) -> None:
    """Send this session's X API requests to ``base_url``; ``None`` leaves it on X."""
    if not base_url:
        return
    adapter = RebaseAdapter(base_url)
    for host in X_API_HOSTS:
        session.mount(host, adapter)
