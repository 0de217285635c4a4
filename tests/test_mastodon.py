"""The Mastodon source over real HTTP to a loopback fake Mastodon (tests/mastodon_server.py)."""

from __future__ import annotations

import html
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mastodon import (
    Mastodon,
    MastodonAPIError,
    MastodonGatewayTimeoutError,
    MastodonNetworkError,
    MastodonRatelimitError,
    MastodonServiceUnavailableError,
)

from bot.channels import Batch, Rejected, Source
from bot.channels.mastodon import MastodonSource, channel_error
from bot.channels.mastodon_payload import CHECKPOINT_NAME, html_to_text, parse_status
from bot.errors import ChannelError, PayloadError, PlatformUnavailableError, RateLimitedError
from bot.models import Post
from tests.mastodon_server import TOKEN, FakeMastodon

WHEN = "2024-05-01T10:15:30.123Z"


def status(sid: int | str = 9001, content: str = "<p>hello</p>", **over: Any) -> dict[str, Any]:
    """A status as Mastodon's API sends it inside a mention notification."""
    data: dict[str, Any] = {
        "id": str(sid),
        "created_at": WHEN,
        "in_reply_to_id": None,
        "in_reply_to_account_id": None,
        "sensitive": False,
        "spoiler_text": "",
        "visibility": "public",
        "language": "en",
        "uri": f"https://social.example/users/alice/statuses/{sid}",
        "url": f"https://social.example/@alice/{sid}",
        "content": content,
        "account": {
            "id": "110",
            "username": "alice",
            "acct": "alice@social.example",
            "display_name": "Alice ✨",
            "created_at": "2023-01-01T00:00:00.000Z",
            "note": "<p>Customer since 2009</p>",
            "fields": [
                {"name": "Website", "value": '<a href="https://alice.example">alice</a>'},
                {"name": "📍 Location", "value": "Leeds &amp; Bradford", "verified_at": None},
            ],
        },
        "mentions": [
            {
                "id": "1",
                "username": "bank",
                "acct": "bank",
                "url": "https://bank.example/@bank",
            }
        ],
        "tags": [],
        "emojis": [],
        "media_attachments": [],
    }
    data.update(over)
    return data


def note(nid: int, kind: str = "mention", **status_over: Any) -> dict[str, Any]:
    """A notification; mentions carry a status whose id is ``nid + 1000``."""
    data: dict[str, Any] = {
        "id": str(nid),
        "type": kind,
        "created_at": WHEN,
        "account": status()["account"],
    }
    if kind in ("mention", "favourite", "reblog"):
        data["status"] = status(nid + 1000, f"<p>post {nid}</p>", **status_over)
    return data


# --- fixtures and a consumer running batches() on its own thread --------------------------


@pytest.fixture
def server() -> Iterator[FakeMastodon]:
    fake = FakeMastodon().start()
    yield fake
    fake.close()


@pytest.fixture
def client(server: FakeMastodon) -> Iterator[Mastodon]:
    c = Mastodon(access_token=TOKEN, api_base_url=server.url, version_check_mode="none")
    yield c
    c.session.close()


@pytest.fixture
def make_source(server: FakeMastodon, client: Mastodon) -> Callable[..., MastodonSource]:
    def make(**kwargs: Any) -> MastodonSource:
        options: dict[str, Any] = {
            "poll_interval": 0.2,
            "retry_initial": 0.05,
            "retry_max": 0.4,
            "client": client,
            **kwargs,
        }
        return MastodonSource(server.url, TOKEN, **options)

    return make


class Run:
    """Iterates ``source.batches`` on a thread, collecting what it yields."""

    def __init__(self, source: MastodonSource, since_id: str | None = None) -> None:
        self.source = source
        self.since_id = since_id
        self.stop = threading.Event()
        self.batches: list[Batch] = []
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._consume, daemon=True)
        self._thread.start()

    def _checkpoint(self, name: str) -> str | None:
        return self.since_id if name == CHECKPOINT_NAME else None

    def _consume(self) -> None:
        try:
            for batch in self.source.batches(self.stop, self._checkpoint):
                with self._cond:
                    self.batches.append(batch)
                    self._cond.notify_all()
        except BaseException as exc:
            with self._cond:
                self.error = exc
                self._cond.notify_all()

    @property
    def items(self) -> list[Post | Rejected]:
        with self._cond:
            return [item for batch in self.batches for item in batch.items]

    @property
    def post_ids(self) -> list[str]:
        return [i.id for i in self.items if isinstance(i, Post)]

    @property
    def checkpoint(self) -> str | None:
        with self._cond:
            marks = [b.checkpoint[1] for b in self.batches if b.checkpoint]
        return marks[-1] if marks else None

    def wait_posts(self, n: int, timeout: float = 5.0) -> None:
        with self._cond:
            done = self._cond.wait_for(
                lambda: (
                    self.error is not None
                    or sum(isinstance(i, Post) for b in self.batches for i in b.items) >= n
                ),
                timeout,
            )
        if self.error is not None:
            raise self.error
        assert done, f"wanted {n} posts, got {self.post_ids}"

    def finish(self, within: float = 2.0) -> float:
        """Set ``stop``; the source must end within ``within`` seconds. Returns the time."""
        started = time.monotonic()
        self.stop.set()
        self._thread.join(within)
        took = time.monotonic() - started
        assert not self._thread.is_alive(), "batches() did not stop"
        if self.error is not None:
            raise self.error
        return took


@pytest.fixture
def run() -> Iterator[Callable[..., Run]]:
    runs: list[Run] = []

    def start(source: MastodonSource, since_id: str | None = None) -> Run:
        r = Run(source, since_id)
        runs.append(r)
        return r

    yield start
    for r in runs:
        r.stop.set()
        r._thread.join(2)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mastodon-stream" and t.is_alive()]


# --- parse_status ---------------------------------------------------------------------------


def test_parse_realistic_status_with_html_emoji_rtl_and_zero_width() -> None:
    content = (
        '<p><span class="h-card" translate="no"><a href="https://bank.example/@bank" '
        'class="u-url mention">@<span>bank</span></a></span> The ATM at Kirkgate ate my card '
        "again &amp; nobody answers 😡 &lt;3 isn&#39;t love</p>"
        '<p>Line one<br />Line two: <a href="https://example.org/very/long/path" '
        'rel="nofollow noopener" target="_blank"><span class="invisible">https://</span>'
        '<span class="ellipsis">example.org/very/lo</span><span class="invisible">ng/path'
        "</span></a></p>"
        "<p>מה קורה עם \u200fהכספומט  في الفرع؟</p>"
        "<p>fam\u200bily\ufeff: 👩\u200d👩\u200d👧 #<span>bank</span>fail</p>"
    )
    post = parse_status(status(42, content, in_reply_to_id="41", language="he"))

    assert post.text == (
        "@bank The ATM at Kirkgate ate my card again & nobody answers 😡 <3 isn't love\n\n"
        "Line one\nLine two: https://example.org/very/long/path\n\n"
        "מה קורה עם \u200fהכספומט في الفرع؟\n\n"
        "family: 👩\u200d👩\u200d👧 #bankfail"
    )
    assert post.id == "42"
    assert post.uid == "mastodon:42"
    assert post.platform == "mastodon"
    assert post.author.id == "110"
    assert post.author.handle == "alice@social.example"
    assert post.author.name == "Alice ✨"
    assert post.author.location == "Leeds & Bradford"
    assert post.created_at == datetime(2024, 5, 1, 10, 15, 30, 123000, tzinfo=UTC)
    assert post.lang == "he"
    assert post.in_reply_to == "41"
    assert post.conversation_id is None
    assert post.mentions == ("bank",)
    assert json.loads(post.raw)["content"] == content
    assert Post.from_json(post.to_json(), post.raw) == post


def test_parse_accepts_mastodon_py_objects() -> None:
    """What Mastodon.py hands over: datetimes (local zone), int ids, every key present."""
    from mastodon.return_types import Status, try_cast_recurse

    cast = try_cast_recurse(Status, status(103186126728896492, "<p>hi<br>there</p>"))
    assert isinstance(cast["created_at"], datetime)
    post = parse_status(cast)
    assert post.id == "103186126728896492"
    assert post.text == "hi\nthere"
    assert post.created_at == datetime(2024, 5, 1, 10, 15, 30, 123000, tzinfo=UTC)
    assert json.loads(post.raw)["created_at"] == "2024-05-01T10:15:30.123000+00:00"


def test_html_breaks_and_blocks() -> None:
    assert html_to_text("<p>a <br> b</p>text<p>c</p>") == "a\nb\n\ntext\n\nc"
    assert html_to_text("<ul><li>one</li><li>two</li></ul><p>x</p>") == "one\ntwo\n\nx"
    assert html_to_text("<pre>  keep   this</pre><script>alert(1)</script>") == "  keep   this"
    assert html_to_text("<p>&lt;b&gt; &amp;amp; &#x1F600; &nbsp;</p>") == "<b> &amp; 😀 \u00a0"


def test_parse_without_location_field_or_display_name() -> None:
    account = {"id": "7", "acct": "bob", "display_name": None, "fields": [{"name": "Pronouns"}]}
    post = parse_status(status(1, "", account=account, mentions=None, language=None))
    assert (post.author.name, post.author.location, post.text) == ("", "", "")
    assert (post.mentions, post.lang) == ((), "")


def _without(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda s: s.pop(key)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_without("id"), "status.id is missing"),
        (_without("account"), "status.account is missing"),
        (lambda s: s["account"].pop("acct"), "status.account.acct is missing"),
        (lambda s: s["account"].pop("id"), "status.account.id is missing"),
        (_without("content"), "status.content is missing"),
        (_without("created_at"), "status.created_at is missing"),
        (lambda s: s.update(created_at="yesterday"), "status.created_at is not an ISO 8601"),
        (lambda s: s.update(created_at="2024-05-01T10:00:00"), "status.created_at has no time"),
        (lambda s: s.update(id={"nested": 1}), "status.id is not an id"),
        (lambda s: s.update(account="alice"), "status.account is not an object"),
        (lambda s: s.update(content=["<p>x</p>"]), "status.content is not a string"),
        (lambda s: s.update(mentions="bank"), "status.mentions is not a list"),
        (lambda s: s.update(mentions=[{"id": "1"}]), "status.mentions[0].acct is missing"),
    ],
)
def test_malformed_status_raises_payload_error(
    mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    data = status()
    mutate(data)
    with pytest.raises(PayloadError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_status(data)


def test_not_a_mapping_and_too_long_raise_payload_error() -> None:
    with pytest.raises(PayloadError, match="status is not an object"):
        parse_status(["not", "a", "status"])  # type: ignore[arg-type]
    with pytest.raises(PayloadError, match="over the 10 limit"):
        parse_status(status(1, "<p>" + "x" * 11 + "</p>"), max_text_chars=10)


_words = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Cn")),
    min_size=1,
    max_size=12,
)


@given(st.lists(_words, min_size=1, max_size=8))
def test_escaped_text_survives_html_round_trip(words: list[str]) -> None:
    text = " ".join(words)
    assert html_to_text(f"<p>{html.escape(text)}</p>") == text


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


@given(
    st.dictionaries(
        st.sampled_from(
            ["id", "account", "content", "created_at", "mentions", "language", "in_reply_to_id"]
        ),
        _json,
    )
)
def test_arbitrary_fields_give_a_post_or_payload_error(changes: dict[str, Any]) -> None:
    data = status()
    data.update(changes)
    try:
        post = parse_status(data)
    except PayloadError:
        return
    assert post.created_at.tzinfo is not None
    assert isinstance(json.loads(post.raw), dict)


# --- errors at the edge ------------------------------------------------------------------------


def test_channel_error_mapping() -> None:
    limited = channel_error(MastodonRatelimitError("Hit rate limit."), time.time() + 5)
    assert isinstance(limited, RateLimitedError)
    assert limited.retry_after is not None and 4 < limited.retry_after <= 5
    unknown = channel_error(MastodonRatelimitError("Hit rate limit."))
    assert isinstance(unknown, RateLimitedError) and unknown.retry_after is None
    for exc in (
        MastodonNetworkError("Could not complete request"),
        MastodonGatewayTimeoutError("Mastodon API returned error", 504, "Gateway Timeout", None),
        MastodonAPIError("Could not parse response as JSON"),
    ):
        assert isinstance(channel_error(exc), PlatformUnavailableError), exc
    final = channel_error(MastodonAPIError("Mastodon API returned error", 422, "Bad", "no"))
    assert type(final) is ChannelError


def test_rate_limit_is_converted_with_retry_after(
    server: FakeMastodon, make_source: Callable[..., MastodonSource]
) -> None:
    server.rate_limit_next(reset_in=3)
    with pytest.raises(RateLimitedError) as info:
        make_source().fetch_mentions("1")
    assert isinstance(info.value.__cause__, MastodonRatelimitError)
    assert info.value.retry_after is not None and 1.5 < info.value.retry_after < 4.5


def test_server_error_is_converted(
    server: FakeMastodon, make_source: Callable[..., MastodonSource]
) -> None:
    server.fail_next(503)
    with pytest.raises(PlatformUnavailableError) as info:
        make_source().fetch_mentions("1")
    assert isinstance(info.value.__cause__, MastodonServiceUnavailableError)


def test_unreachable_server_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = MastodonSource(f"http://127.0.0.1:{port}", TOKEN)  # nothing listens there
    try:
        with pytest.raises(PlatformUnavailableError) as info:
            source.fetch_mentions("1")
        assert isinstance(info.value.__cause__, MastodonNetworkError)
    finally:
        source.close()


def test_bad_token_ends_batches_with_channel_error(
    server: FakeMastodon, run: Callable[..., Run]
) -> None:
    source = MastodonSource(server.url, "revoked", use_streaming=False)
    try:
        r = run(source, "1")
        wait_until(lambda: r.error is not None)
        assert type(r.error) is ChannelError
        assert str(r.error) == "mastodon: HTTP 401 Unauthorized"
    finally:
        source.close()


def test_invalid_settings_are_refused() -> None:
    for bad in ({"page_limit": 0}, {"page_limit": 81}, {"poll_interval": 0}):
        with pytest.raises(ValueError):
            MastodonSource("http://127.0.0.1:9", TOKEN, **bad)  # type: ignore[arg-type]


# --- polling -----------------------------------------------------------------------------------


def test_catch_up_pages_back_to_the_checkpoint_and_yields_oldest_first(
    server: FakeMastodon, run: Callable[..., Run]
) -> None:
    server.add(note(101), note(102), note(103), note(104, "favourite"))
    server.add(note(105), note(106), note(107))
    # The source builds its own client here, the way the listener will use it.
    source = MastodonSource(server.url, TOKEN, poll_interval=0.2, page_limit=2, use_streaming=False)
    as_source: Source = source  # MastodonSource satisfies the protocol (checked by mypy)
    assert as_source.name == "mastodon"
    try:
        r = run(source, "102")
        r.wait_posts(4)
        assert r.post_ids == ["1103", "1105", "1106", "1107"]
        assert [b.checkpoint for b in r.batches[:2]] == [
            (CHECKPOINT_NAME, "105"),
            (CHECKPOINT_NAME, "107"),
        ]
        first = server.calls("/api/v1/notifications")[:3]
        assert [q.get("max_id") for q in first] == [None, ["106"], ["103"]]
        assert all(q["since_id"] == ["102"] and q["types[]"] == ["mention"] for q in first)
        assert all(q["limit"] == ["2"] for q in first)

        server.add(note(108))  # the next poll starts from the new position
        r.wait_posts(5)
        assert r.post_ids[-1] == "1108"
        assert r.checkpoint == "108"
        assert ["107"] in [q["since_id"] for q in server.calls("/api/v1/notifications")]
        r.finish()
    finally:
        source.close()
    post = r.items[0]
    assert isinstance(post, Post)
    assert post.text == "post 103"
    assert post.author.location == "Leeds & Bradford"
    assert str(json.loads(post.raw)["id"]) == "1103"


def test_first_run_without_checkpoint_takes_only_the_newest_page(
    server: FakeMastodon, make_source: Callable[..., MastodonSource], run: Callable[..., Run]
) -> None:
    server.add(*(note(i) for i in range(1, 6)))
    r = run(make_source(page_limit=2, use_streaming=False))
    r.wait_posts(2)
    r.finish()
    assert r.post_ids == ["1004", "1005"]
    assert r.checkpoint == "5"


def test_unparseable_notification_becomes_rejected(
    server: FakeMastodon, make_source: Callable[..., MastodonSource], run: Callable[..., Run]
) -> None:
    broken = note(402)
    del broken["status"]["account"]
    server.add(note(401), broken, note(403))
    r = run(make_source(use_streaming=False), "400")
    r.wait_posts(2)
    r.finish()
    first, rejected, last = r.items
    assert isinstance(first, Post) and isinstance(last, Post)
    assert isinstance(rejected, Rejected)
    assert rejected.source == "mastodon"
    assert "status.account is missing" in rejected.reason
    assert json.loads(rejected.raw)["id"] == "402"
    assert r.checkpoint == "403"


def test_rate_limit_and_outage_are_retried_not_raised(
    server: FakeMastodon, make_source: Callable[..., MastodonSource], run: Callable[..., Run]
) -> None:
    server.add(note(301))
    server.rate_limit_next(reset_in=0.6)
    server.fail_next(503, times=2)
    started = time.monotonic()
    r = run(make_source(use_streaming=False), "300")
    r.wait_posts(1)
    took = time.monotonic() - started
    r.finish()
    assert r.post_ids == ["1301"]
    assert len(server.calls("/api/v1/notifications")) >= 4  # 429, 503, 503, then the page
    assert took >= 0.5  # waited for the rate limit's reset


def test_stop_is_prompt_while_backing_off(
    server: FakeMastodon, make_source: Callable[..., MastodonSource], run: Callable[..., Run]
) -> None:
    server.fail_next(503, times=5)
    r = run(make_source(use_streaming=False, retry_initial=30, retry_max=60), "1")
    wait_until(lambda: len(server.calls("/api/v1/notifications")) >= 1)
    assert r.finish(within=1.0) < 1.0


# --- streaming -------------------------------------------------------------------------------


def _wait_covered(server: FakeMastodon, connects: int = 1) -> None:
    """Wait for the ``connects``-th stream connection and a poll after it."""
    assert server.wait_stream_connects(connects)
    wait_until(lambda: server.polls_since_connect(connects) > 0)


def test_stream_delivers_mentions_and_ignores_other_notifications(
    server: FakeMastodon, make_source: Callable[..., MastodonSource], run: Callable[..., Run]
) -> None:
    r = run(make_source(poll_interval=5), "200")
    _wait_covered(server)
    polls = len(server.calls("/api/v1/notifications"))
    server.push(note(201, "favourite"))
    server.push(note(202, "follow"))
    server.push(note(203))
    broken = note(204)
    del broken["status"]
    server.push(broken)
    server.push(note(205))
    r.wait_posts(2)
    wait_until(lambda: r.checkpoint == "205")
    assert r.finish(within=1.0) < 1.0

    assert r.post_ids == ["1203", "1205"]
    rejected = [i for i in r.items if isinstance(i, Rejected)]
    assert [r.reason for r in rejected] == ["notification.status is missing"]
    # They came through the stream: no poll ran meanwhile.
    assert len(server.calls("/api/v1/notifications")) == polls
    wait_until(lambda: not stream_threads(), timeout=2)


def test_malformed_stream_events(
    server: FakeMastodon, make_source: Callable[..., MastodonSource], run: Callable[..., Run]
) -> None:
    """A payload that is not an object is rejected; broken JSON ends the stream, not the source."""
    r = run(make_source(poll_interval=0.2), "900")
    _wait_covered(server)
    server.push_event("notification", '"just a string"')
    wait_until(lambda: any(isinstance(i, Rejected) for i in r.items))
    server.push_event("notification", "{not json")
    assert server.wait_stream_connects(2)  # the stream broke and the source came back
    _wait_covered(server, connects=2)
    server.push(note(901))
    r.wait_posts(1)
    r.finish()
    rejected = [i for i in r.items if isinstance(i, Rejected)]
    assert [(i.reason, i.raw) for i in rejected] == [
        ("notification is not an object", b'"just a string"')
    ]
    assert r.post_ids == ["1901"]


def test_dropped_stream_falls_back_to_polling_then_streams_again(
    server: FakeMastodon, make_source: Callable[..., MastodonSource], run: Callable[..., Run]
) -> None:
    r = run(make_source(poll_interval=0.2), "500")
    _wait_covered(server)
    server.push(note(501))
    r.wait_posts(1)

    server.drop_stream()
    server.add(note(502))  # not streamed: only polling can see this one
    r.wait_posts(2)

    _wait_covered(server, connects=2)
    server.push(note(503))
    r.wait_posts(3)
    wait_until(lambda: r.checkpoint == "503")
    r.finish()
    assert r.post_ids == ["1501", "1502", "1503"]


def test_refused_stream_falls_back_to_polling_then_recovers(
    server: FakeMastodon, make_source: Callable[..., MastodonSource], run: Callable[..., Run]
) -> None:
    server.stream_status = 503
    r = run(make_source(poll_interval=0.2), "600")
    assert server.wait_stream_connects(1)
    server.add(note(601))
    r.wait_posts(1)

    server.stream_status = 200
    _wait_covered(server, connects=2)  # it tried the stream again, later
    server.push(note(602))
    r.wait_posts(2)
    r.finish()
    assert r.post_ids == ["1601", "1602"]


def test_unhealthy_streaming_api_is_left_alone(
    server: FakeMastodon, make_source: Callable[..., MastodonSource], run: Callable[..., Run]
) -> None:
    server.stream_healthy = False
    r = run(make_source(poll_interval=0.1), "700")
    wait_until(lambda: len(server.calls("/api/v1/streaming/health")) >= 1)
    server.add(note(701))
    r.wait_posts(1)
    r.finish()
    assert server.stream_connects == 0
    assert r.post_ids == ["1701"]


def test_mention_seen_by_stream_and_poll_is_yielded_once(
    server: FakeMastodon, make_source: Callable[..., MastodonSource], run: Callable[..., Run]
) -> None:
    """A mention arriving while the stream connects shows in both; the source yields it once."""
    server.stream_healthy = False  # hold the stream back until the mention is in both places
    source = make_source(poll_interval=0.2)
    r = run(source, "800")
    wait_until(lambda: len(server.calls("/api/v1/streaming/health")) >= 1)
    server.push(note(801))  # polling sees it now, the stream once it connects
    server.stream_healthy = True
    r.wait_posts(1)
    assert server.wait_stream_connects(1)
    server.push(note(802))
    r.wait_posts(2)
    r.finish()
    assert r.post_ids == ["1801", "1802"]
