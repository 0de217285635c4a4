"""Routing: who is paged for a complaint, when, how, and why; rotas across midnight, the week
boundary and clock changes; configuration errors that name the file, key and problem."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.errors import ConfigError, UnknownBranchError, UnknownCategoryError
from bot.routing import (
    Directory,
    build_directory,
    current_shift,
    explain,
    load_directory,
    next_on_call,
    next_opening,
    on_call,
    on_duty,
    parse_branches,
    route,
)
from bot.routing.commands import route_command

ROOT = Path(__file__).resolve().parent.parent
LONDON = ZoneInfo("Europe/London")
TORONTO = ZoneInfo("America/Toronto")
WEEKDAYS_5 = ("mon", "tue", "wed", "thu", "fri")


def london(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=LONDON)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


# 2025-06-02 is a Monday (BST). London's clocks change on Sun 2025-03-30 (01:00 GMT → 02:00
# BST) and Sun 2025-10-26 (02:00 BST → 01:00 GMT); Toronto's on 2025-03-09 and 2025-11-02.
MON = (2025, 6, 2)


def person(
    pid: str, hours: dict[str, str], tz: str = "Europe/London", n: int = 0
) -> dict[str, Any]:
    return {
        "id": pid,
        "name": pid.removeprefix("p-").title(),
        "role": "staff",
        "timezone": tz,
        "routes": [
            {"kind": "sms", "target": f"+4477009001{n:02d}"},
            {"kind": "email", "target": f"{pid}@bank.example"},
        ],
        "working_hours": hours,
    }


def weekdays(span: str) -> dict[str, str]:
    return dict.fromkeys(WEEKDAYS_5, span)


def people_doc() -> dict[str, Any]:
    social_rota = []
    for day in WEEKDAYS_5:
        social_rota.append(
            {"person": "p-social-lead", "from": f"{day} 08:00", "to": f"{day} 14:00"}
        )
        social_rota.append({"person": "p-social-kai", "from": f"{day} 14:00", "to": f"{day} 20:00"})
    return {
        "people": [
            person("p-mgr", weekdays("09:00-17:00"), n=1),
            person("p-dep", {**weekdays("12:00-20:00"), "sat": "09:00-13:00"}, n=2),
            person("p-dep2", {"sat": "09:00-17:00"}, n=3),
            person("p-rm", weekdays("08:00-18:00"), n=4),
            person("p-vacant-dep", weekdays("09:00-17:00"), n=5),
            person("p-alex", weekdays("09:00-17:00"), n=6),
            person("p-sam", weekdays("09:00-17:00"), n=7),
            person("p-jordan", weekdays("09:00-17:00"), tz="America/Toronto", n=8),
            person("p-lead", weekdays("09:00-17:00"), n=9),
            person("p-social-lead", weekdays("08:00-14:00"), n=10),
            person("p-social-kai", weekdays("14:00-20:00"), n=11),
        ],
        "teams": [
            {
                "id": "t-oncall",
                "name": "On-call",
                "timezone": "Europe/London",
                "coverage": "24x7",
                "lead": "p-lead",
                "members": ["p-alex", "p-sam", "p-jordan", "p-lead"],
                "rota": [
                    {"person": "p-alex", "from": "mon 09:00", "to": "mon 21:00"},
                    {"person": "p-sam", "from": "mon 21:00", "to": "tue 09:00"},
                    {"person": "p-alex", "from": "tue 09:00", "to": "sat 09:00"},
                    {"person": "p-lead", "from": "sat 09:00", "to": "sun 01:30"},
                    {"person": "p-sam", "from": "sun 01:30", "to": "sun 21:00"},
                    {"person": "p-jordan", "from": "sun 21:00", "to": "mon 09:00"},
                ],
                "routes": [{"kind": "chat", "target": "slack:#oncall"}],
            },
            {
                "id": "t-social",
                "name": "Social care",
                "timezone": "Europe/London",
                "coverage": "working_hours",
                "lead": "p-social-lead",
                "members": ["p-social-lead", "p-social-kai"],
                "working_hours": weekdays("08:00-20:00"),
                "rota": social_rota,
                "routes": [{"kind": "chat", "target": "slack:#social"}],
            },
        ],
    }


def routing_doc() -> dict[str, Any]:
    return {
        "categories": {
            "queue_wait": {"owner": "branch_manager"},
            "online_outage": {"owner": "team", "team": "t-oncall"},
            "other": {"owner": "team", "team": "t-social"},
        },
        "regions": {"north": {"regional_manager": "p-rm", "name": "North"}},
        "unroutable": {"team": "t-social"},
        "escalation": {
            "default": [
                {"after_minutes": 0, "notify": "owner"},
                {"after_minutes": 15, "notify": "backup"},
                {"after_minutes": 30, "notify": "regional_manager"},
                {"after_minutes": 60, "notify": "team:t-social"},
            ],
            "high": [
                {"after_minutes": 0, "notify": ["owner", "backup"]},
                {"after_minutes": 10, "notify": "regional_manager"},
                {"after_minutes": 20, "notify": "team:t-social"},
            ],
            "team": [
                {"after_minutes": 0, "notify": "on_call"},
                {"after_minutes": 15, "notify": "next_on_call"},
                {"after_minutes": 30, "notify": "team_lead"},
            ],
        },
        "outside_hours": "backup_then_regional",
    }


def branches_doc() -> dict[str, Any]:
    def branch(bid: str, manager: str | None, backups: list[str]) -> dict[str, Any]:
        return {
            "id": bid,
            "name": bid.title(),
            "city": "London",
            "lat": 51.5,  # locator fields: ignored by routing
            "timezone": "Europe/London",
            "opening_hours": {**weekdays("09:00-17:00"), "sat": "09:00-13:00", "sun": "closed"},
            "manager": manager,
            "backups": backups,
            "region": "north",
        }

    return {
        "branches": [
            branch("b-main", "p-mgr", ["p-dep", "p-dep2"]),
            branch("b-new", None, ["p-vacant-dep"]),
        ]
    }


def build(
    people: dict[str, Any] | None = None,
    routing: dict[str, Any] | None = None,
    branches: dict[str, Any] | None = None,
) -> Directory:
    return build_directory(
        people or people_doc(),
        routing or routing_doc(),
        parse_branches(branches or branches_doc(), "branches.yaml"),
    )


@pytest.fixture(scope="module")
def d() -> Directory:
    return build()


# ---- branch-owned complaints ---------------------------------------------------------------


def test_branch_category_goes_to_the_manager_in_hours(d: Directory) -> None:
    a = route(d, "queue_wait", "b-main", "medium", london(*MON, 10, 0))
    assert a.owner_kind == "branch_manager"
    assert a.owner == "p-mgr"
    assert a.people == ("p-mgr",)
    assert [(c.who, c.kind) for c in a.routes] == [("p-mgr", "sms"), ("p-mgr", "email")]
    assert any("p-mgr" in w and "on duty" in w for w in a.why)


def test_manager_off_duty_goes_to_the_backup_on_duty(d: Directory) -> None:
    a = route(d, "queue_wait", "b-main", "medium", london(*MON, 18, 0))
    assert a.people == ("p-dep",)
    assert any("p-mgr" in w and "off duty" in w and "first backup on duty" in w for w in a.why)


def test_backups_are_tried_in_order_and_only_when_on_duty(d: Directory) -> None:
    # Saturday 14:00: the manager is off, p-dep finished at 13:00, p-dep2 works until 17:00.
    a = route(d, "queue_wait", "b-main", "medium", london(2025, 6, 7, 14, 0))
    assert a.people == ("p-dep2",)


def test_nobody_on_duty_goes_to_the_regional_manager(d: Directory) -> None:
    a = route(d, "queue_wait", "b-main", "medium", london(2025, 6, 8, 3, 0))  # Sunday night
    assert a.people == ("p-rm",)
    why = " ".join(a.why)
    assert "no backup on duty" in why and "last resort" in why
    # the regional-manager step later has no one new: dropped, and said so
    assert [s.after_minutes for s in a.steps] == [0, 60]
    assert "already paged at +0 min" in why


def test_branch_without_manager_goes_to_backups_then_the_regional_manager(d: Directory) -> None:
    in_hours = route(d, "queue_wait", "b-new", "medium", london(*MON, 10, 0))
    assert in_hours.owner is None
    assert in_hours.people == ("p-vacant-dep",)
    assert any("has no manager" in w for w in in_hours.why)
    at_night = route(d, "queue_wait", "b-new", "medium", london(*MON, 22, 0))
    assert at_night.people == ("p-rm",)


def test_outside_hours_policy_regional_manager_skips_backups() -> None:
    routing = routing_doc()
    routing["outside_hours"] = "regional_manager"
    a = route(build(routing=routing), "queue_wait", "b-main", "medium", london(*MON, 18, 0))
    assert a.people == ("p-rm",)


def test_outside_hours_policy_owner_pages_the_manager_anyway() -> None:
    routing = routing_doc()
    routing["outside_hours"] = "owner"
    a = route(build(routing=routing), "queue_wait", "b-main", "medium", london(*MON, 18, 0))
    assert a.people == ("p-mgr",)
    assert any("paged anyway" in w for w in a.why)


def test_high_severity_pages_owner_and_backup_at_once(d: Directory) -> None:
    a = route(d, "queue_wait", "b-main", "high", london(*MON, 13, 0))
    assert a.policy == "high"
    first = a.steps[0]
    assert first.after_minutes == 0
    assert first.people == ("p-mgr", "p-dep")
    assert [c.who for c in first.routes] == ["p-mgr", "p-mgr", "p-dep", "p-dep"]


def test_escalation_chain_is_concrete_and_ordered(d: Directory) -> None:
    at = london(*MON, 12, 0)
    a = route(d, "queue_wait", "b-main", "medium", at)
    chain = [(s.after_minutes, s.people) for s in a.steps]
    assert chain == [
        (0, ("p-mgr",)),
        (15, ("p-dep",)),
        (30, ("p-rm",)),
        (60, ("p-social-lead",)),
    ]
    assert [s.due for s in a.steps] == [at + timedelta(minutes=m) for m in (0, 15, 30, 60)]
    last = a.steps[-1]
    assert [str(c) for c in last.routes] == [
        "sms +447700900110",
        "email p-social-lead@bank.example",
        "chat slack:#social",  # the team's shared route after its on-call person's own
    ]
    assert [c.who for c in last.routes][-1] == "t-social"
    lines = explain(a)
    assert lines[1].startswith("now: Mgr (p-mgr) via sms +447700900101, then email")
    assert any(line.startswith("+30 min") and "p-rm" in line for line in lines)


def test_each_step_is_resolved_at_its_due_time(d: Directory) -> None:
    # 08:50 Monday: Jordan (Sun 21:00 → Mon 09:00) is on call; at +15 Alex has taken over and
    # has not been paged, so next_on_call reaches Alex; the lead follows.
    a = route(d, "online_outage", None, "medium", london(*MON, 8, 50))
    assert [(s.after_minutes, s.people) for s in a.steps] == [
        (0, ("p-jordan",)),
        (15, ("p-alex",)),
        (30, ("p-lead",)),
    ]
    assert any("hand-over" in w for w in a.why)


def test_nobody_is_paged_twice_for_one_complaint(d: Directory) -> None:
    for hour in range(24):
        a = route(d, "queue_wait", "b-main", "high", london(*MON, hour, 0))
        paged = [p for s in a.steps for p in s.people]
        assert len(paged) == len(set(paged)), (hour, paged)


# ---- team-owned and unroutable complaints --------------------------------------------------


def test_team_category_goes_to_the_on_call_person_whatever_the_branch(d: Directory) -> None:
    a = route(d, "online_outage", "b-main", "high", london(*MON, 10, 0))
    assert a.owner_kind == "team" and a.owner == "t-oncall"
    assert a.policy == "team"  # high severity does not change a team's policy
    assert a.people == ("p-alex",)
    assert ("t-oncall", "chat") in [(c.who, c.kind) for c in a.routes]
    assert [(s.after_minutes, s.people) for s in a.steps] == [
        (0, ("p-alex",)),
        (15, ("p-sam",)),
        (30, ("p-lead",)),
    ]


def test_unroutable_goes_to_the_social_care_team(d: Directory) -> None:
    a = route(d, "queue_wait", None, "medium", london(*MON, 10, 0))
    assert a.owner_kind == "unroutable" and a.owner == "t-social"
    assert a.people == ("p-social-lead",)
    assert "slack:#social" in [c.target for c in a.routes]
    assert any("no branch was found" in w for w in a.why)


def test_closed_working_hours_team_starts_escalating_when_it_opens(d: Directory) -> None:
    at = london(2025, 6, 7, 23, 0)  # Saturday night; social care opens Monday 08:00
    a = route(d, "other", None, "medium", at)
    assert a.now is None and a.people == () and a.routes == ()
    assert a.starts_at == london(2025, 6, 9, 8, 0)
    assert a.steps[0].people == ("p-social-lead",)
    assert a.steps[0].due == a.starts_at
    assert any("closed now" in w for w in a.why)


def test_route_refuses_unknown_branch_category_severity_and_naive_times(d: Directory) -> None:
    at = london(*MON, 10, 0)
    with pytest.raises(UnknownBranchError, match="no branch 'b-nowhere'"):
        route(d, "queue_wait", "b-nowhere", "medium", at)
    with pytest.raises(UnknownCategoryError, match="no routing rule"):
        route(d, "weather", "b-main", "medium", at)
    with pytest.raises(ValueError, match="unknown severity"):
        route(d, "queue_wait", "b-main", "urgent", at)
    with pytest.raises(ValueError, match="no time zone"):
        route(d, "queue_wait", "b-main", "medium", datetime(2025, 6, 2, 10, 0))


# ---- schedules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # Monday 09:00 BST hand-over, one minute either side (UTC is an hour behind)
        (utc(*MON, 7, 59), "p-jordan"),
        (utc(*MON, 8, 0), "p-alex"),
        # Monday 21:00 into a shift that crosses midnight
        (london(*MON, 20, 59), "p-alex"),
        (london(*MON, 21, 0), "p-sam"),
        (london(2025, 6, 3, 0, 0), "p-sam"),
        (london(2025, 6, 3, 8, 59), "p-sam"),
        (london(2025, 6, 3, 9, 0), "p-alex"),
        # Sunday 21:00 → Monday 09:00 crosses the end of the week
        (london(2025, 6, 8, 20, 59), "p-sam"),
        (london(2025, 6, 8, 21, 0), "p-jordan"),
        (london(2025, 6, 8, 23, 59, 59), "p-jordan"),
        (london(2025, 6, 9, 0, 0), "p-jordan"),
        (london(2025, 6, 9, 8, 59, 59), "p-jordan"),
        (london(2025, 6, 9, 9, 0), "p-alex"),
        # winter (GMT): the same wall-clock hand-over is at 09:00 UTC
        (utc(2025, 1, 6, 8, 59), "p-jordan"),
        (utc(2025, 1, 6, 9, 0), "p-alex"),
        # clocks go forward over a 01:30 hand-over (Sun 2025-03-30): it happens at the jump
        (utc(2025, 3, 30, 0, 59), "p-lead"),
        (utc(2025, 3, 30, 1, 0), "p-sam"),  # 02:00 BST
        # clocks go back (Sun 2025-10-26, 01:00-02:00 twice): hand-over on the first pass only
        (utc(2025, 10, 26, 0, 29), "p-lead"),  # 01:29 BST
        (utc(2025, 10, 26, 0, 30), "p-sam"),  # 01:30 BST
        (utc(2025, 10, 26, 1, 10), "p-sam"),  # 01:10 GMT, the repeat: no hand-back
        (utc(2025, 10, 26, 1, 45), "p-sam"),
        # a Toronto engineer hands over at London's 09:00 whatever Toronto's clock says; on
        # Mon 2025-03-10 Toronto is already on summer time and London is not (4 h apart)
        (datetime(2025, 3, 10, 4, 59, tzinfo=TORONTO), "p-jordan"),
        (datetime(2025, 3, 10, 5, 0, tzinfo=TORONTO), "p-alex"),
    ],
)
def test_on_call_at_hand_over_instants(d: Directory, at: datetime, expected: str) -> None:
    assert on_call(d.team("t-oncall"), at) == expected


def test_next_on_call(d: Directory) -> None:
    team = d.team("t-oncall")
    assert next_on_call(team, london(*MON, 10, 0)) == "p-sam"
    assert next_on_call(team, london(2025, 6, 8, 22, 0)) == "p-alex"  # across the week end
    # consecutive shifts of one person are skipped: Sam (Mon 21:00) → Alex twice → the lead
    assert next_on_call(team, london(2025, 6, 3, 12, 0)) == "p-lead"
    social = d.team("t-social")
    assert on_call(social, london(2025, 6, 7, 12, 0)) is None  # Saturday: closed
    assert next_on_call(social, london(2025, 6, 7, 12, 0)) == "p-social-lead"


def test_on_duty_uses_the_persons_own_time_zone(d: Directory) -> None:
    jordan = d.person("p-jordan")  # 09:00-17:00 America/Toronto (EDT = UTC-4 in June)
    assert not on_duty(jordan, utc(*MON, 12, 59))
    assert on_duty(jordan, utc(*MON, 13, 0))
    assert on_duty(jordan, utc(*MON, 20, 59))
    assert not on_duty(jordan, utc(*MON, 21, 0))
    mgr = d.person("p-mgr")  # 09:00-17:00 Europe/London
    assert on_duty(mgr, utc(*MON, 8, 0)) and not on_duty(mgr, utc(*MON, 7, 59))
    assert on_duty(mgr, utc(2025, 1, 6, 9, 0)) and not on_duty(mgr, utc(2025, 1, 6, 8, 59))


def test_working_hours_may_cross_midnight() -> None:
    people = people_doc()
    people["people"][0]["working_hours"] = {
        "fri": "22:00-06:00",
        "mon": "08:00-12:00, 13:00-17:00",
        "sun": False,  # an unquoted `off` in YAML 1.1
    }
    d = build(people=people)
    night = d.person("p-mgr")
    assert on_duty(night, london(2025, 6, 7, 5, 59))  # Saturday morning, the Friday shift
    assert not on_duty(night, london(2025, 6, 7, 6, 0))
    assert not on_duty(night, london(*MON, 12, 30))  # lunch
    assert on_duty(night, london(*MON, 13, 0))


@settings(max_examples=150, deadline=None)
@given(st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31)))
def test_a_24x7_rota_always_has_someone_until_the_next_hand_over(naive: datetime) -> None:
    d = build()
    team = d.team("t-oncall")
    at = naive.replace(tzinfo=UTC)
    cover = current_shift(team, at)
    assert cover is not None
    assert cover.until > at
    # In UTC: aware arithmetic in one zone is wall-clock arithmetic, and a minute before a
    # hand-over at the spring-forward jump (02:00) would be 01:59, a time that does not exist.
    before = cover.until.astimezone(UTC) - timedelta(minutes=1)
    if before > at:
        still = current_shift(team, before)
        assert still is not None and still.index == cover.index
    after = current_shift(team, cover.until)
    assert after is not None and after.index == (cover.index + 1) % len(team.rota)


@settings(max_examples=100, deadline=None)
@given(st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31)))
def test_a_closed_team_opens_at_its_next_shift(naive: datetime) -> None:
    team = build().team("t-social")
    at = naive.replace(tzinfo=UTC)
    opening = next_opening(team, at)
    if opening is None:
        assert on_call(team, at) is not None
        return
    assert opening > at
    assert on_call(team, opening) is not None
    assert on_call(team, opening - timedelta(minutes=1)) is None


# ---- configuration errors -----------------------------------------------------------------

Mutation = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """A mutation setting ``file:a.b.0.c`` (file: people, routing or branches)."""
    doc_name, _, dotted = path.partition(":")

    def mutate(people: dict[str, Any], routing: dict[str, Any], branches: dict[str, Any]) -> None:
        node: Any = {"people": people, "routing": routing, "branches": branches}[doc_name]
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "source", "key", "problem"),
    [
        (
            _set("people:teams.0.rota.2.person", "p-alx"),
            "people.yaml",
            "teams[0].rota[2].person",
            "unknown person 'p-alx' (did you mean 'p-alex'?)",
        ),
        (
            _set("people:teams.0.rota.3.from", "sat 25:00"),
            "people.yaml",
            "teams[0].rota[3].from",
            "'25:00' is not a time of day",
        ),
        (
            _set("people:people.0.working_hours", {"mon": "09:00-25:00"}),
            "people.yaml",
            "people[0].working_hours.mon",
            "'25:00' is not a time of day",
        ),
        (
            _set("people:teams.0.rota.1.to", "tue 10:00"),
            "people.yaml",
            "teams[0].rota[2]",
            "overlaps rota[1] (p-sam mon 21:00–tue 10:00) from tue 09:00 to tue 10:00",
        ),
        (
            _set("people:teams.0.rota.1.to", "tue 08:00"),
            "people.yaml",
            "teams[0].rota",
            "nobody is on call from tue 08:00 to tue 09:00 (Europe/London) but the team's "
            "coverage is 24x7",
        ),
        (
            _set("people:teams.1.rota.9.to", "fri 21:00"),
            "people.yaml",
            "teams[1].rota[9]",
            "runs outside the team's working_hours from fri 20:00",
        ),
        (
            _set("people:teams.0.rota.0.from", 540),  # unquoted 09:00 in YAML 1.1
            "people.yaml",
            "teams[0].rota[0].from",
            "must be a quoted string",
        ),
        (
            _set("people:people.0.routes.0", {"kind": "sms", "target": "07700 900101"}),
            "people.yaml",
            "people[0].routes[0]",
            "not an international phone number",
        ),
        (
            _set("people:people.0.timezone", "Europe/Londn"),
            "people.yaml",
            "people[0].timezone",
            "not an IANA time zone",
        ),
        (
            _set("people:teams.0.lead", "p-nobody"),
            "people.yaml",
            "teams[0].lead",
            "unknown person 'p-nobody'",
        ),
        (
            _set("people:people.1.id", "p-mgr"),
            "people.yaml",
            "people[1].id",
            "duplicate id 'p-mgr' (also people[0])",
        ),
        (
            _set("routing:regions.north.regional_manager", "p-rn"),
            "routing.yaml",
            "regions.north.regional_manager",
            "unknown person 'p-rn'",
        ),
        (
            _set("routing:categories.online_outage", {"owner": "team", "team": "t-oncal"}),
            "routing.yaml",
            "categories.online_outage.team",
            "unknown team 't-oncal'",
        ),
        (
            _set("routing:escalation.default.1.notify", "on_call"),
            "routing.yaml",
            "escalation.default[1].notify[0]",
            "'on_call' needs an owning team",
        ),
        (
            _set("routing:escalation.team.1.notify", ["next_on_call", "team:t-nope"]),
            "routing.yaml",
            "escalation.team[1].notify[1]",
            "unknown team 't-nope'",
        ),
        (
            _set("routing:escalation.high.2.after_minutes", 5),
            "routing.yaml",
            "escalation.high[2].after_minutes",
            "must be later than the step before (10)",
        ),
        (
            _set("routing:outside_hours", "wake_everyone"),
            "routing.yaml",
            "outside_hours",
            "(got 'wake_everyone')",
        ),
        (
            _set("branches:branches.0.manager", "p-mrg"),
            "branches.yaml",
            "branches[0].manager",
            "unknown person 'p-mrg' (did you mean 'p-mgr'?)",
        ),
        (
            _set("branches:branches.1.region", "south"),
            "branches.yaml",
            "branches[1].region",
            "unknown region 'south' (routing.yaml regions: north)",
        ),
        (
            _set("branches:branches.0.backups", ["p-dep", "p-mgr"]),
            "branches.yaml",
            "branches[0].backups[1]",
            "the branch's own manager",
        ),
    ],
)
def test_config_errors_name_file_key_and_problem(
    mutate: Mutation, source: str, key: str, problem: str
) -> None:
    people, routing, branches = people_doc(), routing_doc(), branches_doc()
    mutate(people, routing, branches)
    with pytest.raises(ConfigError) as err:
        build(people, routing, branches)
    assert err.value.source == source
    assert err.value.key == key
    assert problem in err.value.problem
    assert str(err.value).startswith(f"{source}: {key}: ")


def test_every_problem_is_counted() -> None:
    people = people_doc()
    people["teams"][0]["lead"] = "p-x"
    people["teams"][1]["lead"] = "p-y"
    with pytest.raises(ConfigError, match=r"unknown person 'p-x' \(and 1 more problem\)"):
        build(people=people)


def test_categories_must_match_what_the_classifier_emits() -> None:
    with pytest.raises(ConfigError) as err:
        build_directory(
            people_doc(),
            routing_doc(),
            parse_branches(branches_doc(), "branches.yaml"),
            categories=("queue_wait", "online_outage", "other", "fees_billing"),
        )
    assert (err.value.key, err.value.problem) == ("categories", "no rule for fees_billing")


def write_config(tmp_path: Path, **docs: dict[str, Any]) -> Path:
    cdir = tmp_path / "config"
    cdir.mkdir()
    defaults = {"people": people_doc(), "routing": routing_doc(), "branches": branches_doc()}
    for name, doc in {**defaults, **docs}.items():
        (cdir / f"{name}.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return cdir


def test_load_directory_names_the_file_path(tmp_path: Path) -> None:
    people = people_doc()
    rota = copy.deepcopy(people["teams"][0]["rota"])
    rota[0]["from"] = "mon 25:00"
    people["teams"][0]["rota"] = rota
    cdir = write_config(tmp_path, people=people)
    with pytest.raises(ConfigError) as err:
        load_directory(cdir)
    assert err.value.source == str(cdir / "people.yaml")
    assert err.value.key == "teams[0].rota[0].from"
    (cdir / "routing.yaml").write_text("categories: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"routing\.yaml: line \d+, column \d+: invalid YAML"):
        load_directory(cdir)


def test_load_directory_reads_a_config_folder(tmp_path: Path) -> None:
    d = load_directory(write_config(tmp_path))
    assert set(d.branches) == {"b-main", "b-new"}
    assert d.sources.people == str(tmp_path / "config" / "people.yaml")


# ---- the sample configuration and the command ---------------------------------------------


def test_sample_configuration_routes_every_category_for_every_branch() -> None:
    from bot.models import DEFAULT_CATEGORIES

    d = load_directory(ROOT / "config", categories=DEFAULT_CATEGORIES)
    instants = [london(*MON, 10, 0), london(2025, 6, 7, 23, 30), london(2025, 10, 26, 1, 30)]
    for branch_id in [*d.branches, None]:
        for category in DEFAULT_CATEGORIES:
            for at in instants:
                a = route(d, category, branch_id, "high", at)
                assert a.steps, (category, branch_id, at)
                assert a.steps[0].people or a.now is None or a.routes


def test_route_command_prints_who_routes_chain_and_why() -> None:
    result = CliRunner().invoke(
        route_command,
        ["-c", "queue_wait", "-b", "ldn-camden", "--at", "2025-06-02T10:00:00+01:00"],
    )
    assert result.exit_code == 0, result.output
    assert "p-ldn-camden-mgr" in result.output
    assert "escalation" in result.output and "why:" in result.output


def test_route_command_reads_the_groups_config_and_refuses_naive_times(tmp_path: Path) -> None:
    cdir = write_config(tmp_path)

    @click.group()
    @click.pass_context
    def cli(ctx: click.Context) -> None:
        ctx.obj = {"config_dir": cdir}

    cli.add_command(route_command)
    ok = CliRunner().invoke(
        cli, ["route", "-c", "online_outage", "-s", "high", "--at", "2025-06-02T10:00Z"]
    )
    assert ok.exit_code == 0, ok.output
    assert "p-alex" in ok.output
    naive = CliRunner().invoke(cli, ["route", "-c", "queue_wait", "--at", "2025-06-02T10:00"])
    assert naive.exit_code == 2
    assert "has no offset" in naive.output
    missing = CliRunner().invoke(cli, ["route"])
    assert missing.exit_code == 2 and "--category" in missing.output


def test_route_command_classifies_and_locates_the_text() -> None:
    """With the post's text, the installed model and the sample bank's locator decide."""
    from bot.cli import cli

    result = CliRunner().invoke(
        cli,
        [
            "route",
            "40 minute queue at the Camden Town branch, one counter open @NorthbankHelp",
            "--at",
            "2026-11-16T10:00:00+00:00",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "a complaint" in result.output and "queue_wait" in result.output
    assert "ldn-camden" in result.output and "p-ldn-camden-mgr" in result.output
    praise = CliRunner().invoke(
        cli, ["route", "thank you @NorthbankHelp, the Deansgate team were brilliant today"]
    )
    assert praise.exit_code == 0 and "nobody would be paged" in praise.output
