"""What a page says on each channel, rendered from ``templates/pages/``.

One message covers one or more incidents for one person (bundling): the SMS is short (at most
``sms_max_chars``: branch, category, count, severity, the signed link of the first incident),
the email quotes every complaint (escaped: post text is data) with each incident's link and
escalation step, the chat message quotes the latest complaints. Incidents come most severe
first; the first is the one whose job built the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.errors import RenderError
from bot.models import Complaint, Incident
from bot.render import Renderer, renderer

EMAIL_MAX_COMPLAINTS = 100  # per incident; the console shows the rest
CHAT_MAX_COMPLAINTS = 5
_SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2}


@dataclass(frozen=True, slots=True)
class PageItem:
    """One incident in a page: its state, complaints, the step and the person's link."""

    incident: Incident
    complaints: Sequence[Complaint]
    step: int
    link: str
    where: str = ""  # a reader's name for the branch or team ("Camden Town branch")


@dataclass(frozen=True, slots=True)
class Message:
    """A rendered page for one channel."""

    title: str
    body: str
    body_format: str  # "text" | "html" | "markdown": apprise's body_format


TEMPLATES = (
    "pages/subject.txt",
    "pages/sms.txt",
    "pages/email.txt",
    "pages/email.html",
    "pages/chat.md",
)


def preload(render_with: Renderer | None = None) -> None:
    """Compile the page templates now (before a worker forks work horses)."""
    r = render_with or renderer()
    for name in TEMPLATES:
        r.env.get_template(name)


def order(items: Sequence[PageItem]) -> list[PageItem]:
    """The first item stays first; the rest most severe, then most complaints, first."""
    if not items:
        return []
    head, rest = items[0], items[1:]
    key = lambda i: (_SEVERITY_RANK.get(i.incident.severity, 3), -i.incident.complaint_count)  # noqa: E731
    return [head, *sorted(rest, key=key)]


def compose(
    kind: str,
    fmt: str,
    *,
    company: str,
    person_name: str,
    items: Sequence[PageItem],
    page_id: str,
    sms_max_chars: int = 320,
    render_with: Renderer | None = None,
) -> Message:
    """The page for ``kind`` (sms, email, chat) in ``fmt`` (text, html, markdown)."""
    if not items:
        raise ValueError("a page needs at least one incident")
    r = render_with or renderer()
    views = [_view(i) for i in order(items)]
    ctx: dict[str, Any] = {
        "company": company,
        "person_name": person_name,
        "items": views,
        "first": views[0],
        "page_id": page_id,
    }
    title = " ".join(r.render("pages/subject.txt", **ctx).split())
    if kind == "sms":
        return Message(title, _sms(r, ctx, sms_max_chars), "text")
    if kind == "email":
        if fmt == "html":
            return Message(title, r.render("pages/email.html", **ctx), "html")
        return Message(title, r.render("pages/email.txt", **ctx), "text")
    if kind == "chat":
        return Message(title, r.render("pages/chat.md", **ctx), "markdown")
    raise ValueError(f"unknown route kind {kind!r}")


def _sms(r: Renderer, ctx: dict[str, Any], limit: int) -> str:
    """The most detailed SMS that fits: full, compact, then only the essentials and link."""
    for detail in (2, 1, 0):
        text = " ".join(r.render("pages/sms.txt", detail=detail, **ctx).split())
        if len(text) <= limit:
            return text
    raise RenderError(f"an SMS page does not fit in {limit} characters even without details")


def _view(item: PageItem) -> dict[str, Any]:
    inc = item.incident
    complaints = sorted(item.complaints, key=lambda c: c.post.created_at, reverse=True)
    return {
        "id": inc.id,
        "where": item.where or inc.branch_id or inc.team_id or "unknown branch",
        "category": inc.category.replace("_", " "),
        "severity": inc.severity,
        "count": inc.complaint_count,
        "spike": inc.spike,
        "spike_detail": inc.spike_detail,
        "state": inc.state,
        "step": item.step,
        "escalation": "first page" if item.step == 0 else f"escalation step {item.step}",
        "opened": _clock(inc.opened_at),
        "link": item.link,
        "complaints": [_complaint(c) for c in complaints[:EMAIL_MAX_COMPLAINTS]],
        "more": max(0, len(complaints) - EMAIL_MAX_COMPLAINTS),
        "chat_complaints": [_complaint(c) for c in complaints[:CHAT_MAX_COMPLAINTS]],
        "chat_more": max(0, len(complaints) - CHAT_MAX_COMPLAINTS),
    }


def _complaint(c: Complaint) -> dict[str, str]:
    return {
        "text": c.post.text,
        "handle": c.post.author.handle,
        "platform": c.post.platform,
        "at": c.post.created_at.astimezone(UTC).strftime("%d %b %H:%M UTC"),
        "severity": c.severity,
    }


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%d %b %H:%M UTC")
