"""X sources: the filtered stream (tweepy.StreamingClient) and mentions polling (tweepy.Client).

tweepy ends a stream when our handler raises, so the handler here only puts the raw line on a
queue (never slow work, never an exception), and the source supervises the stream thread,
restarting it if it stops for any reason other than ``stop``. Reconnect backoff on errors is
tweepy's, which follows X's documented schedule (network errors: +0.25 s up to 16 s; HTTP
errors: 5 s doubling to 320 s; 429: from 60 s). Platform errors are converted here to
:mod:`bot.errors` types so nothing above imports tweepy.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests
import tweepy

from bot.channels import Batch, CheckpointGetter, Rejected
from bot.channels.transport import rebase_session
from bot.channels.x_payload import (
    EXPANSIONS,
    PLACE_FIELDS,
    TWEET_FIELDS,
    USER_FIELDS,
    parse_stream_line,
    parse_timeline_page,
)
from bot.config import Settings, StreamRule
from bot.errors import (
    ChannelError,
    InvalidRuleError,
    PayloadError,
    PlatformUnavailableError,
    RateLimitedError,
)
from bot.models import Post

log = logging.getLogger(__name__)


def convert_error(exc: Exception) -> ChannelError:
    """A tweepy/requests error → the bot's error type (raise it ``from exc``)."""
    if isinstance(exc, tweepy.TooManyRequests):
        reset = exc.response.headers.get("x-rate-limit-reset") if exc.response is not None else None
        retry_after = max(0.0, float(reset) - time.time()) if reset else None
        return RateLimitedError(f"X rate limit: {exc}", retry_after=retry_after)
    if isinstance(exc, tweepy.TwitterServerError | requests.RequestException):
        return PlatformUnavailableError(f"X unavailable: {exc}")
    return ChannelError(f"X error: {exc}")


def drain(q: queue.Queue[Any], first_wait: float, max_items: int, max_wait: float) -> list[Any]:
    """Take up to ``max_items`` from ``q``: wait ``first_wait`` for one, then ``max_wait``."""
    try:
        items = [q.get(timeout=first_wait)]
    except queue.Empty:
        return []
    deadline = time.monotonic() + max_wait
    while len(items) < max_items:
        left = deadline - time.monotonic()
        try:
            items.append(q.get(timeout=left) if left > 0 else q.get_nowait())
        except queue.Empty:
            break
    return items


def to_item(raw: bytes, source: str, max_text_chars: int) -> Post | Rejected:
    try:
        return parse_stream_line(raw, max_text_chars)
    except PayloadError as exc:
        return Rejected(source=source, reason=str(exc), raw=raw)


class _QueueingStream(tweepy.StreamingClient):
    """A StreamingClient whose handler only queues the raw line: it cannot fail or block."""

    def __init__(self, sink: queue.Queue[bytes], stall_timeout: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sink = sink
        self.stall_timeout = stall_timeout

    def _connect(self, method: str, endpoint: str, **kwargs: Any) -> None:
        # tweepy fixes the read timeout (no data nor keep-alive) at 21 s; make it a setting.
        super()._connect(method, endpoint, timeout=self.stall_timeout, **kwargs)

    def on_data(self, raw_data: bytes) -> None:
        self.sink.put(raw_data)

    def on_request_error(self, status_code: int) -> None:
        log.warning("x stream: HTTP %s; tweepy reconnects with X's backoff", status_code)

    def on_connection_error(self) -> None:
        log.warning("x stream: connection dropped or stalled; reconnecting")

    def on_exception(self, exception: Exception) -> None:
        log.error("x stream: stopped by %r; the supervisor restarts it", exception)


class XStreamSource:
    """Posts from X's filtered stream, with rules kept in sync with settings."""

    name = "x-stream"

    def __init__(self, settings: Settings, *, restart_wait: float = 5.0) -> None:
        token = settings.secrets.x_bearer_token
        if token is None:
            raise ChannelError("X filtered stream needs TRIAGE_X_BEARER_TOKEN in the environment")
        self.settings = settings
        self.restart_wait = restart_wait
        self.queue: queue.Queue[bytes] = queue.Queue(maxsize=100_000)
        self.stream = _QueueingStream(
            self.queue,
            bearer_token=token.get_secret_value(),
            stall_timeout=settings.x.stream_timeout_seconds,
            daemon=True,
        )
        rebase_session(self.stream.session, settings.x.api_base_url)

    def sync_rules(self) -> None:
        """Make X's stream rules exactly the configured ones; invalid rules stop start-up."""
        wanted = {(r.value, r.tag) for r in self.settings.x.rules}
        try:
            current = self.stream.get_rules().data or []
            have = {(r.value, r.tag or ""): r.id for r in current}
            stale = [rid for key, rid in have.items() if key not in wanted]
            if stale:
                self.stream.delete_rules(stale)
            missing = [r for r in self.settings.x.rules if (r.value, r.tag) not in have]
            if missing:
                resp = self.stream.add_rules([tweepy.StreamRule(r.value, r.tag) for r in missing])
        except tweepy.TweepyException as exc:
            if isinstance(exc, tweepy.BadRequest):
                raise InvalidRuleError(f"X rejected the stream rules: {exc}") from exc
            raise convert_error(exc) from exc
        if missing and resp.errors:
            raise InvalidRuleError(_rule_errors(missing, resp.errors))

    def _start(self) -> None:
        params: dict[str, Any] = {
            "expansions": EXPANSIONS,
            "tweet_fields": TWEET_FIELDS,
            "user_fields": USER_FIELDS,
            "place_fields": PLACE_FIELDS,
            "threaded": True,
        }
        if self.settings.x.backfill_minutes:
            params["backfill_minutes"] = self.settings.x.backfill_minutes
        self.stream.filter(**params)

    def batches(self, stop: threading.Event, checkpoint: CheckpointGetter) -> Iterator[Batch]:
        self.sync_rules()
        self._start()
        ingest = self.settings.ingest
        try:
            while not stop.is_set():
                raws = drain(self.queue, 0.2, ingest.batch_size, ingest.batch_wait_ms / 1000)
                if raws:
                    yield Batch([to_item(r, self.name, ingest.max_text_chars) for r in raws])
                elif not self.stream.running and not stop.is_set():
                    # tweepy gave up (an exception, or max_retries): start it again.
                    log.error("x stream stopped; restarting in %.1f s", self.restart_wait)
                    if stop.wait(self.restart_wait):
                        break
                    self._start()
        finally:
            self.stream.disconnect()
            thread = self.stream.thread
            if thread is not None:
                thread.join(timeout=self.settings.x.stream_timeout_seconds + 5)
            rest = []
            while not self.queue.empty():
                rest.append(self.queue.get_nowait())
            if rest:  # lines received before the stop are stored, not dropped
                yield Batch([to_item(r, self.name, ingest.max_text_chars) for r in rest])


def _rule_errors(rules: list[StreamRule], errors: list[dict[str, Any]]) -> str:
    parts = []
    for e in errors:
        value = e.get("value") or (e.get("details") or [""])[0]
        parts.append(f"{value!r}: {e.get('title', '')} {e.get('detail') or e.get('details') or ''}")
    return "X rejected stream rule(s): " + "; ".join(parts or [str(rules)])


class XMentionsSource:
    """Posts that mention the bot's account, polled from the mentions timeline.

    The ``since_id`` checkpoint advances only with the last page of a poll, stored in the same
    transaction as its posts; rate-limit headers are honoured before X has to answer 429.
    """

    name = "x-mentions"
    checkpoint_name = "x:mentions:since_id"

    def __init__(self, settings: Settings) -> None:
        s = settings.secrets
        self.settings = settings
        if (
            s.x_consumer_key
            and s.x_consumer_secret
            and s.x_access_token
            and s.x_access_token_secret
        ):
            self.client = tweepy.Client(
                consumer_key=s.x_consumer_key.get_secret_value(),
                consumer_secret=s.x_consumer_secret.get_secret_value(),
                access_token=s.x_access_token.get_secret_value(),
                access_token_secret=s.x_access_token_secret.get_secret_value(),
                return_type=requests.Response,
            )
            self.user_auth = True
        elif s.x_bearer_token:
            self.client = tweepy.Client(
                bearer_token=s.x_bearer_token.get_secret_value(), return_type=requests.Response
            )
            self.user_auth = False
        else:
            raise ChannelError("X mentions polling needs TRIAGE_X_BEARER_TOKEN or OAuth 1.0a keys")
        rebase_session(self.client.session, settings.x.api_base_url)
        self.user_id: str | None = None
        self.remaining: str | None = None  # rate-limit headers of the last response
        self.reset: str | None = None

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            resp: requests.Response = fn(*args, **kwargs)
        except (tweepy.TweepyException, requests.RequestException) as exc:
            raise convert_error(exc) from exc
        self.remaining = resp.headers.get("x-rate-limit-remaining")
        self.reset = resp.headers.get("x-rate-limit-reset")
        body: dict[str, Any] = resp.json()
        return body

    def _resolve_user(self) -> str:
        if self.user_id is None:
            if self.user_auth:
                body = self._call(self.client.get_me, user_auth=True)
            else:
                body = self._call(self.client.get_user, username=self.settings.company.x_handle)
            self.user_id = str(body["data"]["id"])
        return self.user_id

    def poll(self, since_id: str | None, stop: threading.Event) -> Iterator[Batch]:
        """One poll: every page newer than ``since_id``; the last batch carries the checkpoint."""
        user_id = self._resolve_user()
        token: str | None = None
        newest: str | None = None
        max_chars = self.settings.ingest.max_text_chars
        while True:
            page = self._call(
                self.client.get_users_mentions,
                user_id,
                since_id=since_id,
                pagination_token=token,
                max_results=self.settings.x.mentions_page_size,
                expansions=EXPANSIONS,
                tweet_fields=TWEET_FIELDS,
                user_fields=USER_FIELDS,
                place_fields=PLACE_FIELDS,
                user_auth=self.user_auth,
            )
            meta = page.get("meta") or {}
            newest = newest or meta.get("newest_id")
            items: list[Post | Rejected] = []
            for raw, result in parse_timeline_page(page, max_chars):
                if isinstance(result, PayloadError):
                    items.append(Rejected(self.name, str(result), raw))
                else:
                    items.append(result)
            token = meta.get("next_token")
            if not token:
                yield Batch(items, (self.checkpoint_name, newest) if newest else None)
                return
            yield Batch(items)
            self._respect_rate_limit(stop)

    def _respect_rate_limit(self, stop: threading.Event) -> None:
        """Wait for the window to reset when the last response said none are left."""
        if self.remaining == "0" and self.reset:
            wait = max(0.0, float(self.reset) - time.time()) + 1
            log.info("x mentions: rate limit used up; waiting %.0f s", wait)
            stop.wait(wait)

    def batches(self, stop: threading.Event, checkpoint: CheckpointGetter) -> Iterator[Batch]:
        backoff = 5.0
        while not stop.is_set():
            try:
                yield from self.poll(checkpoint(self.checkpoint_name), stop)
                backoff = 5.0
                self._respect_rate_limit(stop)
                stop.wait(self.settings.x.mentions_poll_seconds)
            except RateLimitedError as exc:
                wait = exc.retry_after if exc.retry_after is not None else 60.0
                log.warning("x mentions: rate limited; waiting %.0f s", wait)
                stop.wait(wait + 1)
            except PlatformUnavailableError as exc:
                log.warning("x mentions: %s; retrying in %.0f s", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 320.0)
