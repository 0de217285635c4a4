"""The ``triagebot`` command: clear errors, and what ops read from ``status``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import redis
from click.testing import CliRunner

from bot.cli import cli
from bot.models import Author, Complaint, Post
from bot.store.incidents import IncidentStore


def test_an_invalid_setting_is_one_line_and_exit_code_2() -> None:
    result = CliRunner().invoke(cli, ["check-config"], env={"TRIAGE_INGEST__BATCH_SIZE": "-1"})
    assert result.exit_code == 2
    assert "TRIAGE_INGEST__BATCH_SIZE: ingest.batch_size" in result.output
    assert "Traceback" not in result.output


def test_status_shows_open_incidents_and_the_oldest_unacknowledged(
    redis_url: str, redis_client: redis.Redis
) -> None:
    incidents = IncidentStore(redis_client, "triage")
    post = Post("1", "x", Author("1", "ann"), "queue!", datetime(2026, 11, 16, 10, tzinfo=UTC))
    complaint = Complaint(post, "queue_wait", "medium", 0.9, "ldn-camden")
    first, _, _ = incidents.add_complaint(
        complaint, group="branch:ldn-camden:queue_wait", team_id=None, window_s=60, now=100
    )
    incidents.transition(first, "paged", "triagebot")
    other = Complaint(
        Post("2", "x", Author("2", "bo"), "app down", post.created_at),
        "online_outage",
        "high",
        0.9,
        None,
    )
    second, _, _ = incidents.add_complaint(
        other, group="team:t-digital-oncall:online_outage", team_id="t", window_s=60, now=200
    )
    incidents.transition(second, "acknowledged", "p-alex")
    result = CliRunner().invoke(cli, ["status", "--json"], env={"REDIS_URL": redis_url})
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["open_incidents"] == {"paged": 1, "acknowledged": 1}
    assert figures["oldest_unacknowledged"]["id"] == first
    assert figures["queues"] == {"pages": 0, "replies": 0, "housekeeping": 0}
