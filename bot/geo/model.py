"""What the locator returns. Plain frozen dataclasses, no I/O; meant to move to ``bot.models``."""

from __future__ import annotations

from dataclasses import dataclass

from bot.models import Span


@dataclass(frozen=True, slots=True)
class Evidence:
    """One reason for (or against) a branch, in words a person on the social team can check.

    ``kind``: ``coordinates``, ``place``, ``text``, ``city``, ``profile`` (what was seen), or
    ``conflict``, ``ambiguous``, ``ignored``, ``none`` (how the locator judged it).
    """

    kind: str
    summary: str
    branch_ids: tuple[str, ...] = ()  # branches this evidence points to
    span: Span | None = None  # where in the post text, for text evidence
    strength: float = 0.0  # how much it counted, 0..1; evidence is ordered strongest first


@dataclass(frozen=True, slots=True)
class Location:
    """Which branch a post is about, how sure the locator is, and why.

    ``branch_id`` None means unroutable: no evidence, or evidence pointing at several branches
    (``candidates``) that nothing could tell apart. ``confidence`` is the locator's confidence
    in ``branch_id`` (0.0 when None).
    """

    branch_id: str | None
    confidence: float
    evidence: tuple[Evidence, ...]
    candidates: tuple[str, ...] = ()

    @property
    def routable(self) -> bool:
        return self.branch_id is not None

    def explain(self) -> str:
        """The evidence as lines, strongest first: for the unroutable queue and for pages."""
        return "\n".join(f"{e.kind}: {e.summary}" for e in self.evidence)
