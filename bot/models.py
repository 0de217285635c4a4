"""Plain data carried between the stages; no I/O here.

Every platform's payload becomes one :class:`Post`. Posts travel through the Redis stream as
JSON made by :meth:`Post.to_json` and come back with :meth:`Post.from_json`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Author:
    """Who wrote a post, as the platform describes them."""

    id: str
    handle: str
    name: str = ""
    location: str = ""  # free-text profile location, geocoded as the weakest evidence


@dataclass(frozen=True, slots=True)
class Place:
    """A platform place tag: a name and a bounding box (west, south, east, north)."""

    name: str
    full_name: str = ""
    country_code: str = ""
    bbox: tuple[float, float, float, float] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Place:
        return cls(
            d["name"], d.get("full_name", ""), d.get("country_code", ""), _bbox(d.get("bbox"))
        )


@dataclass(frozen=True, slots=True)
class Post:
    """One public post mentioning the company, normalised across platforms.

    ``uid`` (``platform:id``) is the identity used for dedupe; ``raw`` keeps the payload bytes
    exactly as the platform sent them, for audit (stored beside the post, not inside its JSON).
    """

    id: str
    platform: str
    author: Author
    text: str
    created_at: datetime
    lang: str = ""
    coordinates: tuple[float, float] | None = None  # (lat, lon)
    place: Place | None = None
    in_reply_to: str | None = None
    conversation_id: str | None = None
    mentions: tuple[str, ...] = ()
    raw: bytes = b""

    @property
    def uid(self) -> str:
        return f"{self.platform}:{self.id}"

    def to_dict(self) -> dict[str, Any]:
        place = self.place
        return {
            "id": self.id,
            "platform": self.platform,
            "author": {
                "id": self.author.id,
                "handle": self.author.handle,
                "name": self.author.name,
                "location": self.author.location,
            },
            "text": self.text,
            "created_at": self.created_at.isoformat(),
            "lang": self.lang,
            "coordinates": list(self.coordinates) if self.coordinates else None,
            "place": None
            if place is None
            else {
                "name": place.name,
                "full_name": place.full_name,
                "country_code": place.country_code,
                "bbox": list(place.bbox) if place.bbox else None,
            },
            "in_reply_to": self.in_reply_to,
            "conversation_id": self.conversation_id,
            "mentions": list(self.mentions),
        }

    def to_json(self) -> bytes:
        """The post without ``raw``, as compact UTF-8 JSON."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any], raw: bytes = b"") -> Post:
        a = d["author"]
        p = d.get("place")
        coords = d.get("coordinates")
        return cls(
            id=d["id"],
            platform=d["platform"],
            author=Author(a["id"], a["handle"], a.get("name", ""), a.get("location", "")),
            text=d["text"],
            created_at=datetime.fromisoformat(d["created_at"]),
            lang=d.get("lang", ""),
            coordinates=(float(coords[0]), float(coords[1])) if coords else None,
            place=None if p is None else Place.from_dict(p),
            in_reply_to=d.get("in_reply_to"),
            conversation_id=d.get("conversation_id"),
            mentions=tuple(d.get("mentions", ())),
            raw=raw,
        )

    @classmethod
    def from_json(cls, s: str | bytes, raw: bytes = b"") -> Post:
        return cls.from_dict(orjson.loads(s), raw)


def _bbox(v: Any) -> tuple[float, float, float, float] | None:
    if not v:
        return None
    w, s, e, n = (float(x) for x in v)
    return (w, s, e, n)


@dataclass(frozen=True, slots=True)
class Span:
    """A piece of post text a stage used (a location mention, a severity cue)."""

    start: int  # character offsets into Post.text
    end: int
    label: str
    text: str


@dataclass(frozen=True, slots=True)
class Classification:
    """The classifier's judgement of one post."""

    complaint: bool
    probability: float  # P(complaint)
    category: str
    category_probability: float
    severity: str  # "low" | "medium" | "high"
    severity_reasons: tuple[str, ...] = ()
    spans: tuple[Span, ...] = ()
    lang: str = "en"
    supported_language: bool = True  # False: classified anyway, flagged for a person


SEVERITIES = ("low", "medium", "high")

# The default complaint categories of a service business; routing.yaml gives each an owner.
DEFAULT_CATEGORIES: tuple[str, ...] = (
    "queue_wait",
    "staff_service",
    "facilities_atm",
    "online_outage",
    "cards_payments",
    "fees_billing",
    "security_fraud",
    "contact_centre",
    "delivery_orders",
    "disruption",
    "other",
)

# Incident states, in the order an incident normally moves through them. ``escalated`` means
# the next level was paged because nobody acknowledged in time.
OPEN, PAGED, ESCALATED, ACKNOWLEDGED, RESOLVED, REPLIED = (
    "open",
    "paged",
    "escalated",
    "acknowledged",
    "resolved",
    "replied",
)
ACTIVE_STATES = (OPEN, PAGED, ESCALATED, ACKNOWLEDGED)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One thing that happened to an incident: who did what, when."""

    at: float  # unix time
    kind: str  # opened, complaint, paged, escalated, acknowledged, updated, resolved, replied, ...
    who: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Complaint:
    """A post judged a complaint, with what triage decided about it."""

    post: Post
    category: str
    severity: str
    probability: float
    branch_id: str | None
    location_confidence: float = 0.0
    location_evidence: tuple[str, ...] = ()
    severity_reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "post": self.post.to_dict(),
            "category": self.category,
            "severity": self.severity,
            "probability": self.probability,
            "branch_id": self.branch_id,
            "location_confidence": self.location_confidence,
            "location_evidence": list(self.location_evidence),
            "severity_reasons": list(self.severity_reasons),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Complaint:
        return cls(
            post=Post.from_dict(d["post"]),
            category=d["category"],
            severity=d["severity"],
            probability=float(d["probability"]),
            branch_id=d.get("branch_id"),
            location_confidence=float(d.get("location_confidence", 0.0)),
            location_evidence=tuple(d.get("location_evidence", ())),
            severity_reasons=tuple(d.get("severity_reasons", ())),
        )


@dataclass(frozen=True, slots=True)
class Incident:
    """Complaints about one branch (or owning team) and category, handled as one problem."""

    id: str
    group: str  # what groups complaints: "branch:<id>:<category>" or "team:<id>:<category>"
    category: str
    branch_id: str | None
    team_id: str | None
    state: str
    severity: str
    opened_at: float
    updated_at: float
    last_complaint_at: float
    complaint_count: int
    spike: bool = False
    spike_detail: str = ""
    escalation_step: int = -1  # the highest escalation step paged so far
    fix: str = ""
