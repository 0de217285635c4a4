"""The X API v2 sandbox, exercised by real tweepy over real HTTP on loopback."""

from __future__ import annotations

import base64
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import tweepy
from hypothesis import given
from hypothesis import strategies as st

from bot.channels.sandbox import (
    DUPLICATE_CONTENT,
    RuleSyntaxError,
    SandboxServer,
    TweetView,
    parse_rule,
    tweet_payload,
)
from bot.channels.transport import rebase_session
from bot.channels.x_payload import (
    EXPANSIONS,
    PLACE_FIELDS,
    TWEET_FIELDS,
    USER_FIELDS,
    parse_stream_line,
)

TOKEN = "test-bearer"
STREAM_PATH = "/2/tweets/search/stream"
CAMDEN = {
    "id": "pl1",
    "full_name": "Camden Town, London",
    "name": "Camden Town",
    "country_code": "GB",
    "bbox": [-0.15, 51.53, -0.13, 51.55],
}


class Stream(tweepy.StreamingClient):
    """A StreamingClient with a 1 s read timeout that queues what it receives."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.connects = 0

    def _connect(self, method: str, endpoint: str, **kw: Any) -> None:  # type: ignore[override]
        super()._connect(method, endpoint, timeout=1.0, **kw)

    def on_connect(self) -> None:
        self.connects += 1

    def on_data(self, raw_data: bytes) -> None:
        self.lines.put(raw_data)

    def next_line(self, timeout: float = 3.0) -> bytes:
        return self.lines.get(timeout=timeout)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(keepalive_interval=0.2, bearer_token=TOKEN) as sb:
        yield sb


@pytest.fixture
def make_stream(sandbox: SandboxServer) -> Iterator[Callable[..., Stream]]:
    """Streams rebased onto the sandbox; disconnected and joined after the test."""
    made: list[Stream] = []

    def make(token: str = TOKEN, **kwargs: Any) -> Stream:
        stream = Stream(token, daemon=True, **kwargs)
        rebase_session(stream.session, sandbox.base_url)
        made.append(stream)
        return stream

    yield make
    for stream in made:
        stream.disconnect()
        if stream.thread is not None:
            stream.thread.join(5)
            assert not stream.thread.is_alive()
        stream.session.close()


def _client(sandbox: SandboxServer, **kwargs: Any) -> tweepy.Client:
    client = tweepy.Client(**kwargs)
    rebase_session(client.session, sandbox.base_url)
    return client


@pytest.fixture
def user_client(sandbox: SandboxServer) -> Iterator[tweepy.Client]:
    """The bot's account: OAuth 1.0a user context, as replies are posted."""
    client = _client(
        sandbox,
        consumer_key="ck",
        consumer_secret="cs",
        access_token="at",
        access_token_secret="as",
    )
    yield client
    client.session.close()


@pytest.fixture
def app_client(sandbox: SandboxServer) -> Iterator[tweepy.Client]:
    """App-only bearer auth, as mentions are polled without user keys."""
    client = _client(sandbox, bearer_token=TOKEN)
    yield client
    client.session.close()


def _filter(stream: Stream, **params: Any) -> None:
    stream.filter(
        expansions=EXPANSIONS,
        tweet_fields=TWEET_FIELDS,
        user_fields=USER_FIELDS,
        place_fields=PLACE_FIELDS,
        threaded=True,
        **params,
    )


# -- the payload factory and rules, without HTTP ---------------------------------------------


def test_tweet_payload_is_a_realistic_stream_payload() -> None:
    p = tweet_payload(
        "@NorthbankHelp queue at Camden is 40 min, cc @ann_k (mail me@x.com)",
        post_id="1850000000000000001",
        location="Camden, London",
        created_at=datetime(2026, 11, 22, 9, 0, 0, 123456, tzinfo=UTC),
        coordinates=(51.539, -0.1426),
        place=CAMDEN,
        in_reply_to="1849999999999999999",
        in_reply_to_user_id="1000",
        matching_rules=[{"id": "7", "tag": "mentions"}],
    )
    data = p["data"]
    assert data["created_at"] == "2026-11-22T09:00:00.123Z"
    assert data["entities"]["mentions"] == [
        {"start": 0, "end": 14, "username": "NorthbankHelp"},
        {"start": 45, "end": 51, "username": "ann_k"},
    ]
    assert data["text"][45:51] == "@ann_k"
    assert data["geo"] == {
        "place_id": "pl1",
        "coordinates": {"type": "Point", "coordinates": [-0.1426, 51.539]},
    }
    assert data["referenced_tweets"] == [{"type": "replied_to", "id": "1849999999999999999"}]
    assert data["in_reply_to_user_id"] == "1000"
    assert data["conversation_id"] == "1849999999999999999"
    assert p["includes"]["users"][0]["location"] == "Camden, London"
    assert p["includes"]["places"][0]["geo"]["bbox"] == [-0.15, 51.53, -0.13, 51.55]
    assert p["matching_rules"] == [{"id": "7", "tag": "mentions"}]
    post = parse_stream_line(json.dumps(p).encode())  # the bot's own parser agrees
    assert post.coordinates == (51.539, -0.1426)
    assert post.place is not None and post.place.bbox == (-0.15, 51.53, -0.13, 51.55)
    assert post.in_reply_to == "1849999999999999999"
    assert post.mentions == ("NorthbankHelp", "ann_k")


VIEW = TweetView(
    tweet_payload(
        "Queue at Camden is 40 min @NorthbankHelp #fail",
        post_id="5",
        in_reply_to="4",
        place=CAMDEN,
    )["data"],
    {"42": {"id": "42", "username": "ann_k"}, "1000": {"id": "1000", "username": "NorthbankHelp"}},
    {"pl1": CAMDEN},
)


@pytest.mark.parametrize(
    ("rule", "matches"),
    [
        ("queue camden", True),
        ("QUEUE Camden", True),
        ("queue bus", False),
        ('"40 min"', True),
        ('"min 40"', False),
        ("bus OR camden", True),
        ("bus OR tram", False),
        ("bus queue OR camden", True),  # AND binds tighter: (bus queue) OR camden
        ("@northbankhelp", True),
        ("@otherbank", False),
        ("#FAIL", True),
        ("from:ann_k", True),
        ("from:42", True),
        ("@NorthbankHelp -from:ann_k", False),
        ("(queue OR bus) -is:retweet", True),
        ("camden is:retweet", False),
        ("is:reply to:NorthbankHelp", True),
        ("queue -(bus OR tram)", True),
        ("has:mentions lang:en", True),
        ("has:geo queue", True),
        ("place_country:GB camden", True),
        ("place_country:fr OR conversation_id:4", True),
        ("place_country:fr", False),
    ],
)
def test_rule_matching(rule: str, matches: bool) -> None:
    assert parse_rule(rule).matches(VIEW) is matches


@pytest.mark.parametrize(
    ("rule", "detail"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("(queue camden", "balanced parentheses"),
        ("queue) camden", "balanced parentheses"),
        ('"queue camden', "balanced quotes"),
        ("a" * 513, "maximum is 512"),
        ("queue OR", "OR must join two clauses"),
        ("-queue -bus", "positive"),
        ("colour:red queue", "invalid operator 'colour'"),
        ("from: queue", "invalid field"),
        ("is:cat queue", "invalid field 'cat'"),
    ],
)
def test_invalid_rules_say_why(rule: str, detail: str) -> None:
    with pytest.raises(RuleSyntaxError, match=detail):
        parse_rule(rule)


@given(st.text(max_size=80))
def test_rule_parser_never_fails_otherwise(value: str) -> None:
    try:
        rule = parse_rule(value)
    except RuleSyntaxError:
        return
    assert isinstance(rule.matches(VIEW), bool)


# -- the filtered stream ----------------------------------------------------------------------


def _add_rules(stream: Stream, *rules: tuple[str, str]) -> list[str]:
    resp = stream.add_rules([tweepy.StreamRule(value, tag=tag) for value, tag in rules])
    assert not resp.errors, resp.errors
    return [r.id for r in resp.data]


def test_stream_delivers_matching_posts_with_expansions(
    sandbox: SandboxServer, make_stream: Callable[..., Stream]
) -> None:
    stream = make_stream()
    [mentions_id, _] = _add_rules(
        stream, ("@NorthbankHelp", "mentions"), ('"northbank bank"', "brand")
    )
    _filter(stream)
    assert sandbox.wait_for_stream()
    sandbox.publish(text="nothing to do with us")  # matches no rule: not streamed
    pid = sandbox.publish(
        text="queue at Camden is 40 min @NorthbankHelp",
        location="Camden, London",
        place=CAMDEN,
        coordinates=(51.539, -0.1426),
    )
    payload = json.loads(stream.next_line())
    assert payload["data"]["id"] == pid
    assert payload["data"]["author_id"] == "42"
    assert payload["data"]["entities"]["mentions"][0]["username"] == "NorthbankHelp"
    assert payload["data"]["created_at"].endswith("Z")
    assert payload["matching_rules"] == [{"id": mentions_id, "tag": "mentions"}]
    users = {u["id"]: u for u in payload["includes"]["users"]}
    assert users["42"]["location"] == "Camden, London"
    assert users["1000"]["username"] == "NorthbankHelp"  # entities.mentions.username expansion
    assert payload["includes"]["places"][0]["geo"]["bbox"] == CAMDEN["bbox"]
    post = parse_stream_line(json.dumps(payload).encode())
    assert post.author.location == "Camden, London" and post.place is not None
    assert stream.lines.empty()


def test_stream_sends_only_requested_fields(
    sandbox: SandboxServer, make_stream: Callable[..., Stream]
) -> None:
    stream = make_stream()
    _add_rules(stream, ("camden", "area"))
    stream.filter(threaded=True)  # no expansions, no fields: X's defaults
    assert sandbox.wait_for_stream()
    sandbox.publish(text="Camden branch closed", place=CAMDEN)
    payload = json.loads(stream.next_line())
    assert set(payload["data"]) == {"id", "text", "edit_history_tweet_ids"}
    assert "includes" not in payload


def test_second_connection_gets_too_many_connections(
    sandbox: SandboxServer, make_stream: Callable[..., Stream]
) -> None:
    _filter(make_stream())
    assert sandbox.wait_for_stream()
    resp = requests.get(
        sandbox.base_url + STREAM_PATH, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    )
    assert resp.status_code == 429
    assert resp.json()["connection_issue"] == "TooManyConnections"
    assert sandbox.stream_connections == 1


def test_stream_reconnects_after_drop_and_backfills(
    sandbox: SandboxServer, make_stream: Callable[..., Stream]
) -> None:
    stream = make_stream()
    _add_rules(stream, ("@NorthbankHelp", "mentions"))
    _filter(stream, backfill_minutes=2)
    assert sandbox.wait_for_stream()
    first = sandbox.publish(text="@NorthbankHelp one")
    assert json.loads(stream.next_line())["data"]["id"] == first
    assert sandbox.drop_stream()
    assert sandbox.wait_for_stream(connections=2)
    # backfill replays what was published in the last two minutes, duplicates included
    assert json.loads(stream.next_line())["data"]["id"] == first
    second = sandbox.publish(text="@NorthbankHelp two")
    assert json.loads(stream.next_line())["data"]["id"] == second
    assert stream.connects == 2


def test_stall_is_detected_by_the_read_timeout_and_reconnected(
    sandbox: SandboxServer, make_stream: Callable[..., Stream]
) -> None:
    stream = make_stream()
    _add_rules(stream, ("@NorthbankHelp", "mentions"))
    _filter(stream)
    assert sandbox.wait_for_stream()
    started = time.monotonic()
    sandbox.stall_stream(5)
    assert sandbox.wait_for_stream(connections=2, timeout=4)
    assert 0.9 < time.monotonic() - started < 3  # the 1 s read timeout, not the 5 s stall
    pid = sandbox.publish(text="@NorthbankHelp after the stall")
    assert json.loads(stream.next_line())["data"]["id"] == pid


def test_raw_lines_reach_the_client_as_sent(
    sandbox: SandboxServer, make_stream: Callable[..., Stream]
) -> None:
    stream = make_stream()
    _filter(stream)
    assert sandbox.wait_for_stream()
    bad = [b'{"data": {"id": "1", "te', b'{"data": {"text": "caf\xe9"}}', b'{"matching_rules": []}']
    for raw in bad:
        assert sandbox.send_raw_line(raw)
    assert [stream.next_line() for _ in bad] == bad


def test_malformed_payloads_are_published_as_given(
    sandbox: SandboxServer, make_stream: Callable[..., Stream]
) -> None:
    stream = make_stream()
    _add_rules(stream, ("@NorthbankHelp", "mentions"))
    stream.filter(tweet_fields=["author_id", "entities"], expansions="author_id", threaded=True)
    assert sandbox.wait_for_stream()
    odd = {"data": {"id": "12abc", "text": "@NorthbankHelp hi", "entities": "?"}, "includes": []}
    assert sandbox.publish(odd) == "12abc"
    assert json.loads(stream.next_line())["data"] == {
        "id": "12abc",
        "text": "@NorthbankHelp hi",
        "entities": "?",
    }
    mentions = requests.get(
        sandbox.base_url + "/2/users/1000/mentions",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    assert mentions.json()["data"][0]["id"] == "12abc"  # what X would never send, sent as given


def test_keep_alives_flow_and_stop_ends_the_stream(make_stream: Callable[..., Stream]) -> None:
    before = set(threading.enumerate())
    sb = SandboxServer(keepalive_interval=0.05).start()
    stream = Stream("any-token", daemon=True, max_retries=0)
    rebase_session(stream.session, sb.base_url)
    keepalives = threading.Semaphore(0)
    stream.on_keep_alive = keepalives.release  # type: ignore[method-assign]
    stream.filter(threaded=True)
    assert all(keepalives.acquire(timeout=2) for _ in range(3))
    started = time.monotonic()
    sb.stop()  # ends the open stream connection too
    assert time.monotonic() - started < 2
    stream.disconnect()
    assert stream.thread is not None
    stream.thread.join(5)
    stream.session.close()
    assert set(threading.enumerate()) <= before


# -- stream reconnect backoff: tweepy's, on X's documented schedule ---------------------------


def _record_sleeps(monkeypatch: pytest.MonkeyPatch, stream: Stream, stop_after: int) -> list[float]:
    waits: list[float] = []

    def recorder(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) >= stop_after:
            stream.disconnect()
        time.sleep(0.01)

    monkeypatch.setattr(tweepy.streaming, "sleep", recorder)
    return waits


@pytest.mark.parametrize(
    ("status", "expected"),
    [(503, [5, 10, 20, 40]), (500, [5, 10, 20, 40]), (429, [60, 120, 240, 320])],
)
def test_stream_http_errors_back_off_on_x_schedule(
    sandbox: SandboxServer,
    make_stream: Callable[..., Stream],
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    expected: list[float],
) -> None:
    stream = make_stream()
    waits = _record_sleeps(monkeypatch, stream, stop_after=len(expected))
    sandbox.fail_next(STREAM_PATH, status, count=len(expected))
    stream.filter()  # in this thread: returns once the recorder disconnects
    assert waits == expected
    assert sandbox.stream_connections == 0


def test_stream_network_errors_back_off_linearly(
    make_stream: Callable[..., Stream], monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = make_stream()
    with SandboxServer() as gone:
        rebase_session(stream.session, gone.base_url)  # a port nothing listens on any more
    waits = _record_sleeps(monkeypatch, stream, stop_after=5)
    stream.filter()
    assert waits == [0, 0.25, 0.5, 0.75, 1.0]


# -- stream rules -----------------------------------------------------------------------------


def test_invalid_rules_are_rejected_x_style_and_nothing_is_created(
    sandbox: SandboxServer, make_stream: Callable[..., Stream]
) -> None:
    stream = make_stream()
    resp = stream.add_rules(
        [
            tweepy.StreamRule("@NorthbankHelp", tag="ok"),
            tweepy.StreamRule("(queue camden", tag="bad"),
        ]
    )
    assert resp.data is None
    [error] = resp.errors
    assert error["value"] == "(queue camden"
    assert error["title"] == "UnprocessableEntity"
    assert "balanced parentheses" in error["detail"]
    assert error["type"] == "https://api.twitter.com/2/problems/invalid-rules"
    assert resp.meta["summary"] == {"created": 0, "not_created": 2, "valid": 1, "invalid": 1}
    assert stream.get_rules().data is None


def test_rules_dry_run_duplicates_and_delete(
    sandbox: SandboxServer, make_stream: Callable[..., Stream]
) -> None:
    stream = make_stream()
    dry = stream.add_rules(tweepy.StreamRule("camden queue", tag="t"), dry_run=True)
    assert dry.meta["summary"] == {"created": 1, "not_created": 0, "valid": 1, "invalid": 0}
    assert stream.get_rules().data is None
    [rule_id] = _add_rules(stream, ("camden queue", "t"))
    dup = stream.add_rules(tweepy.StreamRule("camden queue"))
    assert dup.errors[0]["title"] == "DuplicateRule" and dup.errors[0]["id"] == rule_id
    [listed] = stream.get_rules().data
    assert (listed.id, listed.value, listed.tag) == (rule_id, "camden queue", "t")
    gone = stream.delete_rules([rule_id, "999"])
    assert gone.meta["summary"] == {"deleted": 1, "not_deleted": 1}
    assert sandbox.rules() == []


# -- users, mentions and the bot's posts ------------------------------------------------------


def test_users_me_and_by_username(user_client: tweepy.Client, app_client: tweepy.Client) -> None:
    me = user_client.get_me(user_auth=True, user_fields=["location"])
    assert (me.data.id, me.data.username) == (1000, "NorthbankHelp")
    found = app_client.get_user(username="northbankhelp")
    assert found.data.id == 1000
    missing = app_client.get_user(username="nobody_here")
    assert missing.data is None and missing.errors[0]["title"] == "Not Found Error"
    with pytest.raises(tweepy.Forbidden, match="Application-Only is forbidden"):
        app_client.get_me(user_auth=False)  # X: users/me needs user context


def test_published_users_keep_their_own_ids(
    sandbox: SandboxServer, app_client: tweepy.Client
) -> None:
    first = sandbox.publish(text="@NorthbankHelp one", username="bob_b", name="Bob")
    second = sandbox.publish(text="@NorthbankHelp two", username="bob_b", name="Bob")
    sandbox.publish(text="@NorthbankHelp three")  # ann_k, the factory's default author
    bob = app_client.get_user(username="bob_b").data
    assert bob.id != 42
    timeline = app_client.get_users_tweets(bob.id)
    assert [str(t.id) for t in timeline.data] == [second, first]


def test_mentions_pagination_since_id_and_next_token(
    sandbox: SandboxServer, app_client: tweepy.Client
) -> None:
    ids = [sandbox.publish(text=f"@NorthbankHelp problem number {i}") for i in range(130)]
    sandbox.publish(text="no mention here")
    sandbox.publish(text="@someone_else not us either")
    pages = list(
        tweepy.Paginator(
            app_client.get_users_mentions, "1000", max_results=100, expansions="author_id"
        )
    )
    assert [p.meta["result_count"] for p in pages] == [100, 30]
    got = [str(t.id) for p in pages for t in p.data]
    assert got == ids[::-1]  # newest first, nothing twice, nothing missing
    assert pages[0].meta["newest_id"] == ids[-1] and pages[0].meta["oldest_id"] == ids[30]
    assert "next_token" in pages[0].meta and "next_token" not in pages[1].meta
    assert pages[0].includes["users"][0].username == "ann_k"

    newer = app_client.get_users_mentions("1000", since_id=ids[119], max_results=5)
    assert [str(t.id) for t in newer.data] == ids[:119:-1][:5]
    rest = app_client.get_users_mentions(
        "1000", since_id=ids[119], max_results=5, pagination_token=newer.meta["next_token"]
    )
    assert [str(t.id) for t in rest.data] == ids[124:119:-1]
    assert "next_token" not in rest.meta
    older = app_client.get_users_mentions("1000", until_id=ids[2], max_results=5)
    assert [str(t.id) for t in older.data] == [ids[1], ids[0]]
    none = app_client.get_users_mentions("1000", since_id=ids[-1])
    assert none.data is None and none.meta == {"result_count": 0}
    with pytest.raises(tweepy.BadRequest, match="not between 5 and 100"):
        app_client.get_users_mentions("1000", max_results=3)


def test_posts_duplicates_and_threads(
    sandbox: SandboxServer, user_client: tweepy.Client, app_client: tweepy.Client
) -> None:
    complaint = sandbox.publish(text="@NorthbankHelp the Camden ATM ate my card")
    first = user_client.create_tweet(
        text="@ann_k Sorry! We're on it.", in_reply_to_tweet_id=complaint
    )
    with pytest.raises(tweepy.Forbidden, match="duplicate content") as exc:
        user_client.create_tweet(text="@ann_k Sorry! We're on it.", in_reply_to_tweet_id=complaint)
    assert exc.value.response.json()["detail"] == DUPLICATE_CONTENT
    answer = sandbox.publish(text="@NorthbankHelp thanks, how long?", in_reply_to=first.data["id"])
    second = user_client.create_tweet(
        text="@ann_k Fixed: the ATM is back in service.", in_reply_to_tweet_id=answer
    )
    with pytest.raises(tweepy.Forbidden, match="deleted or not visible"):
        user_client.create_tweet(text="@ann_k hello", in_reply_to_tweet_id="12345")
    with pytest.raises(tweepy.Forbidden, match="Application-Only"):
        app_client.create_tweet(text="app-only cannot post", user_auth=False)

    timeline = app_client.get_users_tweets(
        "1000",
        tweet_fields=["in_reply_to_user_id", "referenced_tweets", "conversation_id", "created_at"],
    )
    assert [str(t.id) for t in timeline.data] == [second.data["id"], first.data["id"]]
    newest = timeline.data[0]
    assert newest.in_reply_to_user_id == 42
    assert newest.referenced_tweets[0].id == int(answer)
    assert newest.conversation_id == int(complaint)  # the whole exchange is one thread
    assert newest.created_at is not None
    assert [p["id"] for p in sandbox.posts_by_bot()] == [first.data["id"], second.data["id"]]
    customer = app_client.get_users_tweets("42", tweet_fields=["conversation_id"])
    assert [str(t.id) for t in customer.data] == [answer, complaint]
    assert customer.data[0].conversation_id == int(complaint)  # joined the bot's thread
    assert customer.data[0].in_reply_to_user_id is None  # not asked for: X's default fields


# -- errors: injected, rate limits, auth -------------------------------------------------------


def test_fail_next_429_raises_too_many_requests(
    sandbox: SandboxServer, app_client: tweepy.Client
) -> None:
    sandbox.fail_next("/2/users/1000/mentions", 429, headers={"x-rate-limit-reset": "1"})
    with pytest.raises(tweepy.TooManyRequests) as exc:
        app_client.get_users_mentions("1000")
    assert exc.value.response.headers["x-rate-limit-reset"] == "1"
    assert app_client.get_users_mentions("1000").meta["result_count"] == 0  # only the next one
    sandbox.fail_next("/2/users/", 503, count=2)
    for _ in range(2):
        with pytest.raises(tweepy.TwitterServerError):
            app_client.get_user(username="NorthbankHelp")
    assert app_client.get_user(username="NorthbankHelp").data.id == 1000


def test_rate_limit_headers_and_configured_limits() -> None:
    with SandboxServer(rate_limits={"GET /2/users/:id/mentions": 2}) as sb:
        client = _client(sb, bearer_token="any", return_type=requests.Response)
        try:
            remaining = [
                client.get_users_mentions("1000").headers["x-rate-limit-remaining"]
                for _ in range(2)
            ]
            assert remaining == ["1", "0"]
            with pytest.raises(tweepy.TooManyRequests) as exc:
                client.get_users_mentions("1000")
            h = exc.value.response.headers
            assert (h["x-rate-limit-limit"], h["x-rate-limit-remaining"]) == ("2", "0")
            assert int(h["x-rate-limit-reset"]) > time.time()
            other = client.get_user(username="NorthbankHelp").headers  # its own window
            assert int(other["x-rate-limit-remaining"]) == int(other["x-rate-limit-limit"]) - 1
        finally:
            client.session.close()


def test_unauthorized_without_or_with_a_wrong_token(sandbox: SandboxServer) -> None:
    resp = requests.get(sandbox.base_url + "/2/users/by/username/NorthbankHelp", timeout=5)
    assert resp.status_code == 401 and resp.json()["title"] == "Unauthorized"
    wrong = _client(sandbox, bearer_token="wrong")
    try:
        with pytest.raises(tweepy.Unauthorized):
            wrong.get_user(username="NorthbankHelp")
    finally:
        wrong.session.close()


# -- the control surface over HTTP ------------------------------------------------------------


def test_http_control_endpoints(sandbox: SandboxServer, make_stream: Callable[..., Stream]) -> None:
    base = sandbox.base_url + "/_sandbox"
    stream = make_stream()
    _add_rules(stream, ("@NorthbankHelp", "mentions"))
    _filter(stream)
    assert sandbox.wait_for_stream()

    pid = requests.post(
        base + "/publish",
        json={"text": "@NorthbankHelp via HTTP", "coordinates": [51.5, -0.1]},
        timeout=5,
    ).json()["id"]
    assert json.loads(stream.next_line())["data"]["geo"]["coordinates"]["coordinates"] == [
        -0.1,
        51.5,
    ]
    whole = tweet_payload("@NorthbankHelp a whole payload", post_id="1850000000000000009")
    assert (
        requests.post(base + "/publish", json=whole, timeout=5).json()["id"]
        == "1850000000000000009"
    )
    assert json.loads(stream.next_line())["data"]["id"] == "1850000000000000009"
    raw = b'{"data": {"text": "caf\xe9"}}'
    sent = requests.post(
        base + "/send_raw_line", json={"base64": base64.b64encode(raw).decode()}, timeout=5
    )
    assert sent.json() == {"sent": True} and stream.next_line() == raw

    assert requests.post(base + "/drop_stream", timeout=5).json() == {"dropped": True}
    assert sandbox.wait_for_stream(connections=2)
    requests.post(base + "/stall_stream", json={"seconds": 3}, timeout=5)
    assert sandbox.wait_for_stream(connections=3)

    requests.post(
        base + "/fail_next", json={"path_prefix": "/2/users/", "status": 503}, timeout=5
    ).raise_for_status()
    failed = requests.get(
        sandbox.base_url + "/2/users/1000/mentions",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    assert failed.status_code == 503 and "x-rate-limit-limit" in failed.headers

    state = requests.get(base + "/state", timeout=5).json()
    assert state["stream_connections"] == 3 and state["posts"] == 2
    assert state["rules"][0]["value"] == "@NorthbankHelp"
    assert int(pid) < int(
        requests.post(base + "/publish", json={"text": "x"}, timeout=5).json()["id"]
    )
    assert requests.get(base + "/posts_by_bot", timeout=5).json() == {"data": []}
    bad = requests.post(base + "/stall_stream", json={}, timeout=5)
    assert bad.status_code == 400 and "seconds" in bad.json()["error"]
    assert requests.post(base + "/nope", timeout=5).status_code == 404

    assert requests.post(base + "/reset", timeout=5).json() == {"ok": True}
    after = requests.get(base + "/state", timeout=5).json()
    assert (after["posts"], after["rules"]) == (0, [])
    assert after["stream_connections"] <= 1  # counted afresh; the client may have reconnected


def test_runs_in_the_foreground_from_the_command_line() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.channels.sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        state = requests.get(url + "/_sandbox/state", timeout=5).json()
        assert state["bot"]["username"] == "NorthbankHelp"
    finally:
        proc.terminate()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
