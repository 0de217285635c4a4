"""Signed console links (invariant 6): signed, expiring, one salt per action, single use.

A token carries ``(action, incident id, person id, nonce)``, signed with itsdangerous under a
salt derived from the action, so a token signed for one action never verifies for another.
``load`` checks signature, action and age; ``consume`` marks the nonce used with ``SET NX``,
so the console can refuse a replayed action. Following a link only shows the incident (GET);
the console changes state on POST with CSRF protection, then calls ``consume``.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import redis
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from bot.errors import (
    ExpiredLinkError,
    InvalidLinkError,
    LinkReplayedError,
    WrongLinkActionError,
)
from bot.store.pages import link_nonce_key

# Actions a link can be signed for; the console defines what each one allows.
VIEW = "view"
ACKNOWLEDGE = "ack"
_ACTION = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
SecretKey = str | bytes | list[str] | list[bytes]  # a list: newest key last (rotation)


def _serializer(secret_key: SecretKey, action: str) -> URLSafeTimedSerializer:
    if not _ACTION.match(action):
        raise ValueError(f"invalid link action {action!r}")
    if not secret_key:
        raise ValueError("a secret key is required to sign links (TRIAGE_SECRET_KEY)")
    return URLSafeTimedSerializer(secret_key, salt=f"triagebot.link.{action}")


def sign(incident_id: str, person_id: str, action: str, secret_key: SecretKey) -> str:
    """A URL-safe token for ``action`` on ``incident_id`` by ``person_id``, with a fresh nonce."""
    # A list, not a dict: the token goes into SMS pages, every character counts.
    payload = [action, incident_id, person_id, secrets.token_urlsafe(9)]
    return str(_serializer(secret_key, action).dumps(payload))


def load(token: str, action: str, max_age: int, secret_key: SecretKey) -> tuple[str, str, str]:
    """``(incident_id, person_id, nonce)`` from a token signed for ``action`` at most
    ``max_age`` seconds ago; a LinkError subclass otherwise."""
    s = _serializer(secret_key, action)
    try:
        payload: Any = s.loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise ExpiredLinkError("this link has expired") from exc
    except BadSignature as exc:
        if _signed_for_other_action(token, action, secret_key):
            raise WrongLinkActionError("this link is not valid for this action") from exc
        raise InvalidLinkError("this link is not valid") from exc
    if not (
        isinstance(payload, list)
        and len(payload) == 4
        and all(isinstance(v, str) and v for v in payload)
        and payload[0] == action
    ):
        raise InvalidLinkError("this link is not valid")
    return payload[1], payload[2], payload[3]


def _signed_for_other_action(token: str, action: str, secret_key: SecretKey) -> bool:
    """True when the token verifies under the salt of the action written inside it."""
    try:
        _valid, payload = _serializer(secret_key, action).loads_unsafe(token)
    except Exception:  # an undecodable token is simply invalid
        return False
    other = payload[0] if isinstance(payload, list) and payload else None
    if not isinstance(other, str) or other == action or not _ACTION.match(other):
        return False
    try:
        _serializer(secret_key, other).loads(token)
    except BadSignature:  # includes expiry: an expired token of another action is invalid
        return False
    return True


def consume(client: redis.Redis, nonce: str, *, ttl_seconds: int, prefix: str = "triage") -> None:
    """Mark a link's action as done; LinkReplayedError if it was done before.

    ``ttl_seconds`` must be at least the token's ``max_age``: after that the token is refused
    as expired anyway, so the used-nonce record can go.
    """
    if not nonce:
        raise InvalidLinkError("this link is not valid")
    if not client.set(link_nonce_key(prefix, nonce), 1, nx=True, ex=max(1, int(ttl_seconds))):
        raise LinkReplayedError("this link was already used")


def incident_url(base_url: str, token: str) -> str:
    """The console URL that shows the incident for this token (GET only)."""
    return f"{base_url.rstrip('/')}/i/{token}"
