"""Builds the triage stage's parts from settings: classifier, locator, router, page queue.

Kept apart from :mod:`bot.triage` so the consumer's logic depends on small callables, and the
heavy parts (the spaCy model, the branch index, the routing directory) are built once per
process here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import redis

from bot.config import Settings
from bot.geo.locate import Locator
from bot.geo.registry import Registry
from bot.geo.settings import build_locator as geo_locator
from bot.models import Classification, Complaint, Post
from bot.routing import Assignment, Directory, load_directory, route
from bot.triage import Decision, Placement


def build_locator(settings: Settings, client: redis.Redis | None) -> tuple[Registry, Locator]:
    """The branch registry and a locator with the configured geocoder (cached in Redis)."""
    locator = geo_locator(settings.geo, settings.root, client, settings.redis.key_prefix)
    return locator.registry, locator


def placement(registry: Registry, locator: Locator, post: Post, cls: Classification) -> Placement:
    """Where a complaint is, as the triage consumer needs it."""
    loc = locator.locate(post, cls.spans)
    area = None
    if loc.branch_id is not None:
        branch = registry.get(loc.branch_id)
        area = branch.region or branch.city
    return Placement(
        branch_id=loc.branch_id,
        confidence=loc.confidence,
        evidence=tuple(e.summary for e in loc.evidence),
        area=area,
    )


def plan_of(assignment: Assignment, where: str = "") -> dict[str, Any]:
    """An assignment as the paging plan stored with the incident (see workers.pages);
    ``where`` is how pages name the branch or team."""
    steps = []
    for i, step in enumerate(assignment.steps):
        by_who: dict[str, list[dict[str, str]]] = {}
        for contact in step.routes:
            by_who.setdefault(contact.who, []).append(
                {"kind": contact.kind, "target": contact.target}
            )
        steps.append(
            {
                "step": i,
                "after_minutes": step.after_minutes,
                "due": step.due.timestamp(),
                "recipients": [
                    {"person_id": who, "name": assignment.names.get(who, who), "routes": routes}
                    for who, routes in by_who.items()
                ],
            }
        )
    return {
        "where": where,
        "policy": assignment.policy,
        "owner_kind": assignment.owner_kind,
        "owner": assignment.owner,
        "starts_at": assignment.starts_at.timestamp(),
        "why": list(assignment.why),
        "steps": steps,
    }


def decide(directory: Directory, complaint: Complaint, now: float) -> Decision:
    """Who owns a complaint now, and the incident group it joins."""
    at = datetime.fromtimestamp(now, UTC)
    a = route(directory, complaint.category, complaint.branch_id, complaint.severity, at)
    if a.owner_kind == "branch_manager":
        group = f"branch:{a.branch_id}:{complaint.category}"
        team = None
    elif a.owner_kind == "team":
        group = f"team:{a.owner}:{complaint.category}"
        team = a.owner
    else:
        group = f"unroutable:{complaint.category}"
        team = a.owner
    if a.branch_id is not None and a.owner_kind == "branch_manager":
        where = f"{directory.branch(a.branch_id).name} branch"
    elif team is not None:
        where = directory.name(team)
    else:
        where = ""
    return Decision(
        group=group, team_id=team, plan=plan_of(a, where), unroutable=a.owner_kind == "unroutable"
    )


def build_consumer(settings: Settings, client: redis.Redis, *, name: str | None = None) -> Any:
    """A triage consumer wired to the installed model, the branch registry and routing."""
    from rq import Queue

    from bot.nlp.pipeline import load_classifier
    from bot.store import Store
    from bot.store.incidents import IncidentStore
    from bot.triage import TriageConsumer
    from workers.pages import enqueue_page, escalate_now

    classifier = load_classifier()
    registry, locator = build_locator(settings, client)
    # Every category the model can emit must have an owner: checked now, not per post.
    directory = load_directory(settings.config_dir, categories=classifier.categories)
    queue = Queue(settings.notify.queue, connection=client)
    prefix = settings.redis.key_prefix

    def page(incident_id: str, reason: str) -> None:
        """Page a new incident's first step; a spike on one already paged raises it now."""
        if reason == "spike" and IncidentStore(client, prefix).get(incident_id).state != "open":
            escalate_now(queue, settings, incident_id)
        else:
            enqueue_page(queue, settings, incident_id)

    return TriageConsumer(
        Store(client, settings),
        classify=classifier.classify_many,
        locate=lambda post, cls: placement(registry, locator, post, cls),
        decide=lambda complaint, now: decide(directory, complaint, now),
        enqueue_page=page,
        name=name,
    )
