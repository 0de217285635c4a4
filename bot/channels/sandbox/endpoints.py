"""The X API v2 endpoints the sandbox serves: (status, body) from its state, the query, the JSON
body and path parameters.

Each endpoint is a function of the :class:`~bot.channels.sandbox.server.SandboxServer` whose
state it reads and changes under the server's lock; :mod:`bot.channels.sandbox.http` routes
requests to them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from twitter_text import parse_tweet

from bot.channels.sandbox.errors import (
    DUPLICATE_CONTENT,
    INVALID_REQUEST,
    PROBLEMS,
    invalid_param,
    problem,
)
from bot.channels.sandbox.payload import id_number, pick, tweet_payload, x_time
from bot.channels.sandbox.rules import Rule, RuleSyntaxError, TweetView, parse_rule, rule_json

if TYPE_CHECKING:
    from bot.channels.sandbox.server import SandboxServer


Query = dict[str, list[str]]
Reply = tuple[int, Any]
Endpoint = Callable[..., Reply]  # (server, query, body, **path parameters) -> reply


def csv_values(query: Query, key: str) -> set[str]:
    """The comma-separated values of ``key`` (e.g. ``tweet.fields``), over every occurrence."""
    return {v for raw in query.get(key, []) for v in raw.split(",") if v}


def first_value(query: Query, key: str) -> str | None:
    """The first value of ``key``, or None when it is absent."""
    values = query.get(key)
    return values[0] if values else None


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def rules_get(sb: SandboxServer, query: Query, body: Any, **_: str) -> Reply:
    ids = csv_values(query, "ids")
    with sb._lock:
        rules = [r for r in sb.rules() if not ids or r["id"] in ids]
    meta: dict[str, Any] = {"sent": x_time(datetime.now(UTC)), "result_count": len(rules)}
    return 200, ({"data": rules, "meta": meta} if rules else {"meta": meta})


def rules_post(sb: SandboxServer, query: Query, body: Any, **_: str) -> Reply:
    dry_run = (first_value(query, "dry_run") or "").lower() == "true"  # requests sends "True"
    if not isinstance(body, dict) or ("add" in body) == ("delete" in body):
        return 400, {**INVALID_REQUEST, "errors": [{"message": "Send one of add, delete"}]}
    sent = x_time(datetime.now(UTC))
    with sb._lock:
        if "delete" in body:
            return _delete_rules(sb, body["delete"], dry_run, sent)
        return _add_rules(sb, body["add"], dry_run, sent)


def _add_rules(sb: SandboxServer, add: Any, dry_run: bool, sent: str) -> Reply:
    if not isinstance(add, list) or not all(isinstance(r, dict) for r in add):
        return 400, {**INVALID_REQUEST, "errors": [{"message": "add must be a list"}]}
    errors: list[dict[str, Any]] = []
    valid: list[tuple[str, str | None, Rule]] = []
    existing = {v: rid for rid, (v, _, _) in sb._rules.items()}
    for item in add:
        value, tag = str(item.get("value") or ""), item.get("tag")
        if value in existing:
            errors.append(
                {
                    "value": value,
                    "id": existing[value],
                    "title": "DuplicateRule",
                    "type": PROBLEMS + "duplicate-rules",
                }
            )
            continue
        try:
            valid.append((value, str(tag) if tag else None, parse_rule(value)))
        except RuleSyntaxError as exc:
            errors.append(
                {
                    "value": value,
                    "details": [str(exc)],
                    "detail": str(exc),
                    "title": "UnprocessableEntity",
                    "type": PROBLEMS + "invalid-rules",
                }
            )
    created: list[dict[str, str]] = []
    if not errors:  # X creates all of a request's rules or none of them
        for value, tag, rule in valid:
            rid = sb._next_id()
            created.append(rule_json(rid, value, tag))
            if not dry_run:
                sb._rules[rid] = (value, tag, rule)
    # a dry run reports what would happen, and changes nothing
    summary = {
        "created": len(created),
        "not_created": len(add) - len(created),
        "valid": len(valid),
        "invalid": len(errors),
    }
    out: dict[str, Any] = {"meta": {"sent": sent, "summary": summary}}
    if created:
        out["data"] = created
    if errors:
        out["errors"] = errors
    return (201 if created and not dry_run else 200), out


def _delete_rules(sb: SandboxServer, delete: Any, dry_run: bool, sent: str) -> Reply:
    if not isinstance(delete, dict):
        return 400, {**INVALID_REQUEST, "errors": [{"message": "delete must be an object"}]}
    ids = [str(i) for i in delete.get("ids") or []]
    by_value = {v: rid for rid, (v, _, _) in sb._rules.items()}
    ids += [by_value.get(str(v), str(v)) for v in delete.get("values") or []]
    found = [i for i in ids if i in sb._rules]
    errors = [
        {
            "value": i,
            "details": ["Rule does not exist"],
            "title": "Invalid Request",
            "type": PROBLEMS + "invalid-request",
        }
        for i in ids
        if i not in sb._rules
    ]
    if not dry_run:
        for i in found:
            del sb._rules[i]
    summary = {"deleted": len(found), "not_deleted": len(ids) - len(found)}
    out: dict[str, Any] = {"meta": {"sent": sent, "summary": summary}}
    if errors:
        out["errors"] = errors
    return 200, out


def me(sb: SandboxServer, query: Query, body: Any, **_: str) -> Reply:
    return _user_reply(sb, sb.bot_user_id, query)


def user_by_name(sb: SandboxServer, query: Query, body: Any, username: str = "", **_: str) -> Reply:
    with sb._lock:
        uid = next(
            (i for i, u in sb._users.items() if u.get("username", "").lower() == username.lower()),
            None,
        )
    if uid is None:
        return 200, {
            "errors": [
                {
                    "value": username,
                    "detail": f"Could not find user with username: [{username}].",
                    "title": "Not Found Error",
                    "resource_type": "user",
                    "parameter": "username",
                    "resource_id": username,
                    "type": PROBLEMS + "resource-not-found",
                }
            ]
        }
    return _user_reply(sb, uid, query)


def _user_reply(sb: SandboxServer, uid: str, query: Query) -> Reply:
    with sb._lock:
        user = pick(sb._users[uid], {"id", "name", "username"} | csv_values(query, "user.fields"))
    return 200, {"data": user}


def mentions(sb: SandboxServer, query: Query, body: Any, id: str = "", **_: str) -> Reply:
    with sb._lock:
        name = str(sb._users.get(id, {}).get("username", "")).lower()
        posts = [
            s.payload["data"]
            for s in sb._posts.values()
            if name
            and str(s.payload["data"].get("author_id")) != id
            and name in TweetView(s.payload["data"], sb._users).mentions
        ]
        return _timeline(sb, posts, query)


def user_tweets(sb: SandboxServer, query: Query, body: Any, id: str = "", **_: str) -> Reply:
    with sb._lock:
        posts = [
            s.payload["data"]
            for s in sb._posts.values()
            if str(s.payload["data"].get("author_id")) == id
        ]
        return _timeline(sb, posts, query)


def _timeline(sb: SandboxServer, tweets: list[dict[str, Any]], query: Query) -> Reply:
    """A page of ``tweets``, newest first, with X's paging parameters and ``meta``."""
    raw_max = first_value(query, "max_results") or "10"
    if not raw_max.isdigit() or not 5 <= int(raw_max) <= 100:
        msg = f"The `max_results` query parameter value [{raw_max}] is not between 5 and 100"
        return 400, invalid_param("max_results", raw_max, msg)
    bounds: dict[str, int] = {}
    for name in ("since_id", "until_id"):
        raw = first_value(query, name)
        if raw is not None:
            if not raw.isdigit():
                msg = f"The `{name}` query parameter value [{raw}] is not a valid id"
                return 400, invalid_param(name, raw, msg)
            bounds[name] = int(raw)
    token = first_value(query, "pagination_token")
    if token is not None:
        if not re.fullmatch(r"7140[0-9a-z]+", token):
            msg = f"The `pagination_token` query parameter value [{token}] is not valid"
            return 400, invalid_param("pagination_token", token, msg)
        bounds["before"] = int(token[4:], 36)
    selected = sorted(
        (t for t in tweets if _in_bounds(id_number(t["id"]), bounds)),
        key=lambda t: id_number(t["id"]),
        reverse=True,
    )
    page = selected[: int(raw_max)]
    meta: dict[str, Any] = {"result_count": len(page)}
    if not page:
        return 200, {"meta": meta}
    meta["newest_id"], meta["oldest_id"] = page[0]["id"], page[-1]["id"]
    if len(selected) > len(page):
        meta["next_token"] = "7140" + _b36(max(0, id_number(page[-1]["id"])))
    data, includes = sb._shape(page, query)
    out: dict[str, Any] = {"data": data}
    if includes:
        out["includes"] = includes
    out["meta"] = meta
    return 200, out


def create_tweet(sb: SandboxServer, query: Query, body: Any, **_: str) -> Reply:
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        return 400, {**INVALID_REQUEST, "errors": [{"message": "text is required"}]}
    text = body["text"]
    if not text.strip():
        return 400, {**INVALID_REQUEST, "errors": [{"message": "text must not be empty"}]}
    if parse_tweet(text).weightedLength > 280:
        return 403, problem(403, "Your Tweet text is too long.", "Forbidden")
    reply_to = str((body.get("reply") or {}).get("in_reply_to_tweet_id") or "") or None
    with sb._lock:
        if any(sb._posts[i].payload["data"]["text"] == text for i in sb._bot_posts):
            return 403, problem(403, DUPLICATE_CONTENT, "Forbidden")
        parent = sb._posts.get(reply_to) if reply_to else None
        if reply_to and parent is None:
            return 403, problem(
                403,
                "You attempted to reply to a Tweet that is deleted or not visible to you.",
                "Forbidden",
            )
        bot = sb._users[sb.bot_user_id]
        post_id = sb._next_id()
        payload = tweet_payload(
            text,
            post_id=post_id,
            author_id=sb.bot_user_id,
            username=bot["username"],
            name=bot["name"],
            in_reply_to=reply_to,
            in_reply_to_user_id=parent.payload["data"].get("author_id") if parent else None,
            conversation_id=parent.payload["data"].get("conversation_id") if parent else None,
        )
        sb._store(payload, by_bot=True)
    return 201, {"data": {"id": post_id, "text": text, "edit_history_tweet_ids": [post_id]}}


def _in_bounds(n: int, bounds: dict[str, int]) -> bool:
    return (
        n > bounds.get("since_id", -2)
        and n < bounds.get("until_id", 1 << 64)
        and n < bounds.get("before", 1 << 64)
    )
