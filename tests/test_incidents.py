"""Incidents in Redis: grouping, idempotent complaints, atomic and idempotent transitions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis

from bot.models import Author, Complaint, Post
from bot.store.incidents import IncidentStore, TransitionError


def complaint(n: int, severity: str = "medium", branch: str = "ldn-camden") -> Complaint:
    post = Post(
        str(1000 + n),
        "x",
        Author(str(n), f"cust{n}"),
        f"queue is huge #{n}",
        datetime(2026, 11, 22, 9, 0, tzinfo=UTC),
    )
    return Complaint(post, "queue_wait", severity, 0.93, branch, 0.95, ("text: 'Camden'",))


@pytest.fixture
def incidents(redis_client: redis.Redis) -> IncidentStore:
    return IncidentStore(redis_client, "t")


def test_complaints_about_one_branch_and_category_join_one_incident(
    incidents: IncidentStore,
) -> None:
    group = "branch:ldn-camden:queue_wait"
    first = incidents.add_complaint(complaint(1), group=group, team_id=None, window_s=3600, now=100)
    second = incidents.add_complaint(
        complaint(2, "high"), group=group, team_id=None, window_s=3600, now=200
    )
    other = incidents.add_complaint(
        complaint(3, branch="mcr-deansgate"),
        group="branch:mcr-deansgate:queue_wait",
        team_id=None,
        window_s=3600,
        now=300,
    )
    assert first[1] is True and second == (first[0], False, True)
    assert other[0] != first[0]
    inc = incidents.get(first[0])
    assert inc.complaint_count == 2 and inc.severity == "high"  # the highest of its complaints
    assert [c.post.author.handle for c in incidents.complaints(first[0])] == ["cust1", "cust2"]
    assert sorted(incidents.open_incidents()) == sorted([first[0], other[0]])


def test_the_same_complaint_three_times_is_one_entry(incidents: IncidentStore) -> None:
    group = "branch:ldn-camden:queue_wait"
    results = [
        incidents.add_complaint(complaint(1), group=group, team_id=None, window_s=60, now=t)
        for t in (10, 11, 12)
    ]
    assert [r[2] for r in results] == [True, False, False]
    assert incidents.get(results[0][0]).complaint_count == 1
    kinds = [e.kind for e in incidents.timeline(results[0][0])]
    assert kinds == ["opened", "complaint"]


def test_a_complaint_after_the_window_or_after_resolve_opens_a_new_incident(
    incidents: IncidentStore,
) -> None:
    group = "branch:ldn-camden:queue_wait"
    a, _, _ = incidents.add_complaint(complaint(1), group=group, team_id=None, window_s=60, now=0)
    b, created, _ = incidents.add_complaint(
        complaint(2), group=group, team_id=None, window_s=60, now=61
    )
    assert created and b != a
    incidents.transition(b, "resolved", "p-mgr", {"fix": "opened two counters"}, now=70)
    c, created, _ = incidents.add_complaint(
        complaint(3), group=group, team_id=None, window_s=60, now=71
    )
    assert created and c != b
    assert b not in incidents.open_incidents()


def test_transitions_are_idempotent_and_checked(incidents: IncidentStore) -> None:
    i, _, _ = incidents.add_complaint(complaint(1), group="g", team_id=None, window_s=60, now=0)
    assert incidents.transition(i, "paged", "triagebot", {"to": "p1"}) is True
    assert incidents.transition(i, "paged", "triagebot", {"to": "p1"}) is False  # no change
    assert incidents.transition(i, "acknowledged", "p1") is True
    assert incidents.transition(i, "acknowledged", "p1") is False
    with pytest.raises(TransitionError, match="is acknowledged: cannot become paged"):
        incidents.transition(i, "paged", "triagebot")
    with pytest.raises(TransitionError, match="cannot become replied"):
        incidents.transition(i, "replied", "triagebot")
    assert incidents.transition(i, "resolved", "p1", {"fix": "two more counters"}) is True
    assert incidents.transition(i, "replied", "triagebot") is True
    kinds = [(e.kind, e.who) for e in incidents.timeline(i)]
    assert kinds == [
        ("opened", "triagebot"),
        ("complaint", "triagebot"),
        ("paged", "triagebot"),
        ("acknowledged", "p1"),
        ("resolved", "p1"),
        ("replied", "triagebot"),
    ]
    assert incidents.get(i).state == "replied"
    with pytest.raises(LookupError):
        incidents.transition("999999", "paged", "triagebot")


def test_spike_is_marked_once_and_raises_severity(incidents: IncidentStore) -> None:
    i, _, _ = incidents.add_complaint(complaint(1, "low"), group="g", team_id=None, window_s=60)
    assert incidents.mark_spike(i, "8 complaints in 5 minutes, normal is 0.5")
    assert not incidents.mark_spike(i, "again")
    inc = incidents.get(i)
    assert inc.spike and inc.severity == "high" and inc.spike_detail.startswith("8 complaints")


def test_the_first_paging_plan_wins(incidents: IncidentStore) -> None:
    i, _, _ = incidents.add_complaint(complaint(1), group="g", team_id=None, window_s=60)
    plan = {"policy": "default", "steps": [{"step": 0, "after_minutes": 0, "recipients": []}]}
    assert incidents.set_plan(i, plan)
    assert not incidents.set_plan(i, {"policy": "high", "steps": []})
    assert incidents.plan(i) == plan
