"""X API v2 error bodies the sandbox answers with, shaped as X sends them."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

PROBLEMS = "https://api.twitter.com/2/problems/"
INVALID_REQUEST = {
    "title": "Invalid Request",
    "detail": "One or more parameters to your request was invalid.",
    "type": PROBLEMS + "invalid-request",
}
TOO_MANY_CONNECTIONS = {
    "title": "ConnectionException",
    "detail": "This stream is currently at the maximum allowed connection limit.",
    "connection_issue": "TooManyConnections",
    "type": PROBLEMS + "streaming-connection",
}
DUPLICATE_CONTENT = "You are not allowed to create a Tweet with duplicate content."


def problem(status: int, detail: str | None = None, title: str | None = None) -> dict[str, Any]:
    """X's plain error body for ``status`` (``type: about:blank``)."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return {
        "title": title or phrase,
        "detail": detail or phrase,
        "type": "about:blank",
        "status": status,
    }


def invalid_param(name: str, value: str, message: str) -> dict[str, Any]:
    """X's 400 body for a bad query parameter."""
    return {"errors": [{"parameters": {name: [value]}, "message": message}], **INVALID_REQUEST}


def unsupported_auth(kind: str, supported: str) -> dict[str, Any]:
    return {
        "title": "Unsupported Authentication",
        "detail": f"Authenticating with {kind} is forbidden for this endpoint.  "
        f"Supported authentication types are [{supported}].",
        "type": PROBLEMS + "unsupported-authentication",
        "status": 403,
    }
