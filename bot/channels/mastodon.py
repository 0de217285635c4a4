"""The Mastodon source: mention notifications of the company's account become Posts.

:class:`MastodonSource` catches up by polling ``/api/v1/notifications`` from the saved
``mastodon:since_id``, then follows the user stream (server-sent events through Mastodon.py) and
falls back to polling while the stream is down. Mastodon.py errors are converted here, at the
channel edge, into :mod:`bot.errors` (see :func:`channel_error`); the source backs off and
retries them itself instead of ending.

Checkpoints are only ever the newest notification id up to which nothing can have been missed:
a stream's notifications carry a checkpoint only once a poll that started after the stream
connected has succeeded, because a notification that arrived between the last poll and the
connection would otherwise be skipped by the next ``since_id``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from mastodon import (
    Mastodon,
    MastodonAPIError,
    MastodonError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonServerError,
    StreamListener,
)

from bot import __version__
from bot.channels import Batch, CheckpointGetter, Rejected
from bot.channels.mastodon_payload import (
    CHECKPOINT_NAME,
    PLATFORM,
    parse_status,
    raw_json,
)
from bot.errors import (
    ChannelError,
    PayloadError,
    PlatformUnavailableError,
    RateLimitedError,
)
from bot.models import Post

log = logging.getLogger(__name__)

MAX_PAGE_LIMIT = 80  # Mastodon caps /api/v1/notifications at 80 per page
REQUEST_TIMEOUT = 30.0  # seconds, for the client the source builds itself
# Mastodon's streaming server sends a heartbeat comment about every 15 s, so a silent minute
# means a dead connection (a NAT or proxy dropped it without telling either side).
STREAM_READ_TIMEOUT = 60.0
STREAM_STABLE_AFTER = 60.0  # a stream that lived this long resets the reconnect backoff
MAX_RATE_LIMIT_WAIT = 900.0  # never trust a reset time further away than this
_EVENT_WAIT = 0.25  # longest the loop blocks before looking at ``stop`` again
_RECENT_IDS = 2000  # notification ids remembered to skip what the stream already delivered


def _describe(exc: MastodonError) -> str:
    # Mastodon.py's HTTP errors carry (message, status, reason, error text) as args.
    args = exc.args
    if len(args) == 4 and isinstance(args[1], int):
        return f"HTTP {args[1]} {args[2]}" + (f": {args[3]}" if args[3] else "")
    return str(exc)


def channel_error(exc: MastodonError, ratelimit_reset: float | None = None) -> ChannelError:
    """The :mod:`bot.errors` error for a Mastodon.py error; raise it ``from exc``.

    ``ratelimit_reset`` is the client's ``ratelimit_reset`` (epoch seconds, already corrected
    for the server's clock) and becomes ``retry_after`` of a :class:`RateLimitedError`.
    """
    message = f"mastodon: {_describe(exc)}"
    if isinstance(exc, MastodonRatelimitError):
        retry_after = None
        if ratelimit_reset is not None:
            retry_after = max(0.0, ratelimit_reset - time.time())
        return RateLimitedError(message, retry_after=retry_after)
    if isinstance(exc, (MastodonNetworkError, MastodonServerError)):
        return PlatformUnavailableError(message)
    if isinstance(exc, MastodonAPIError):
        # Without a status the response could not be parsed (a proxy's error page, say),
        # which is worth retrying like a 5xx.
        status = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
        if status is None or status in (408, 425) or status >= 500:
            return PlatformUnavailableError(message)
    return ChannelError(message)


# --- streaming -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Connected:
    stream: _StreamWorker


@dataclass(frozen=True, slots=True)
class _Received:
    stream: _StreamWorker
    notification: Any  # a Mapping unless the server sent something else


@dataclass(frozen=True, slots=True)
class _Ended:
    stream: _StreamWorker
    error: BaseException | None


_Event = _Connected | _Received | _Ended


def _close_refused_stream(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """A requests response hook: close a streamed response that is not a 200.

    Mastodon.py raises on a refused stream connection without closing the response, which
    leaks a socket per reconnect attempt; it only reads the status and reason, which stay
    readable after closing.
    """
    if kwargs.get("stream") and response.status_code != 200:
        response.close()


def _install_stream_hook(client: Mastodon) -> None:
    hooks = client.session.hooks.setdefault("response", [])
    if _close_refused_stream not in hooks:
        hooks.append(_close_refused_stream)


class _QueueListener(StreamListener):
    """Hands stream events to the source's queue; never does slow work on the stream thread."""

    def __init__(self, worker: _StreamWorker) -> None:
        super().__init__()
        self._worker = worker

    def handle_stream(self, response: requests.Response) -> None:
        if not self._worker.attach(response):
            return
        self._worker.events.put(_Connected(self._worker))
        super().handle_stream(response)

    def on_notification(self, notification: Any) -> None:
        self._worker.events.put(_Received(self._worker, notification))


class _StreamWorker:
    """One connection to the user stream, run on a daemon thread; reports through ``events``."""

    def __init__(self, client: Mastodon, events: queue.Queue[_Event], read_timeout: float) -> None:
        self.client = client
        self.events = events
        self.read_timeout = read_timeout
        self.connected_at: float | None = None  # set by the consumer when it sees _Connected
        self.covered = False  # a poll started after connecting has succeeded
        self._lock = threading.Lock()
        self._closed = False
        self._response: requests.Response | None = None
        self._thread = threading.Thread(target=self._run, name="mastodon-stream", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def attach(self, response: requests.Response) -> bool:
        """Remember the open response so :meth:`close` can interrupt it; False if closed."""
        with self._lock:
            if self._closed:
                response.close()
                return False
            self._response = response
            return True

    def close(self, wait: float = 1.0) -> None:
        """Interrupt the blocked read and let the thread end."""
        with self._lock:
            self._closed = True
            response = self._response
        if response is not None:
            # urllib3's shutdown wakes a read blocked on another thread; close alone does not.
            with contextlib.suppress(AttributeError, OSError, RuntimeError, ValueError):
                response.raw.shutdown()
            response.close()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(wait)

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            try:
                healthy = self.client.stream_healthy()
            except MastodonNotFoundError:
                healthy = True  # servers without the health endpoint may still stream
            if not healthy:
                raise PlatformUnavailableError("mastodon: streaming API reports unhealthy")
            listener = _QueueListener(self)
            self.client.stream_user(listener, run_async=False, timeout=self.read_timeout)
        except Exception as exc:  # the thread's edge: every failure becomes an _Ended event
            error = exc
        finally:
            with self._lock:
                self._response = None
        self.events.put(_Ended(self, error))


# --- the source ----------------------------------------------------------------------------


def _notification_id(notification: Any) -> str | None:
    if not isinstance(notification, Mapping):
        return None
    value = notification.get("id")
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        return None
    return str(value)


def _is_newer(a: str, b: str) -> bool:
    """Whether id ``a`` is newer than ``b``: Mastodon ids are numbers, others sort as text."""
    if a.isascii() and a.isdigit() and b.isascii() and b.isdigit():
        return int(a) > int(b)
    return (len(a), a) > (len(b), b)


def _newest(a: str | None, b: str) -> str:
    return b if a is None or _is_newer(b, a) else a


class _Cursor:
    """The source's position: what is covered, what was last checkpointed, what was recent."""

    def __init__(self, since_id: str | None) -> None:
        self.since_id = since_id
        self.saved = since_id
        self._recent: deque[str] = deque(maxlen=_RECENT_IDS)
        self._recent_set: set[str] = set()

    def seen(self, nid: str) -> bool:
        return nid in self._recent_set

    def remember(self, nid: str) -> None:
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(nid)
        self._recent_set.add(nid)


class MastodonSource:
    """Yields mentions of the account behind ``access_token`` as :class:`Batch` es of Posts.

    ``poll_interval`` is how often to poll while the stream is down (or always, without
    streaming); ``page_limit`` is the page size of catch-up polls (at most 80). A failed poll is
    retried after ``retry_initial`` seconds, doubling up to ``retry_max``, or after the rate
    limit's reset time when the server gave one; a status whose text is longer than
    ``max_text_chars`` is rejected. ``client`` replaces the Mastodon.py client the
    source would build; it is switched to ``ratelimit_method="throw"`` because the source does
    its own waiting (Mastodon.py's "wait" would sleep inside a call, and is not thread-safe),
    and its session gets a hook that closes refused stream responses (see
    :func:`_close_refused_stream`).
    """

    name = PLATFORM

    def __init__(
        self,
        api_base_url: str,
        access_token: str,
        poll_interval: float = 30,
        use_streaming: bool = True,
        page_limit: int = 40,
        client: Mastodon | None = None,
        *,
        retry_initial: float = 1.0,
        retry_max: float = 300.0,
        stream_read_timeout: float = STREAM_READ_TIMEOUT,
        max_text_chars: int = 25_000,
    ) -> None:
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval!r}")
        if not 1 <= page_limit <= MAX_PAGE_LIMIT:
            raise ValueError(f"page_limit must be 1..{MAX_PAGE_LIMIT}, got {page_limit!r}")
        if not 0 < retry_initial <= retry_max:
            raise ValueError("retry_initial must be positive and at most retry_max")
        if not stream_read_timeout > 0:
            raise ValueError("stream_read_timeout must be positive")
        if max_text_chars < 1:
            raise ValueError("max_text_chars must be positive")
        self._owns_client = client is None
        if client is None:
            client = Mastodon(
                access_token=access_token,
                api_base_url=api_base_url,
                ratelimit_method="throw",
                request_timeout=REQUEST_TIMEOUT,
                version_check_mode="none",  # no network call in the constructor
                user_agent=f"triagebot/{__version__}",
            )
        client.ratelimit_method = "throw"
        _install_stream_hook(client)
        self.client = client
        self.poll_interval = float(poll_interval)
        self.use_streaming = use_streaming
        self.page_limit = page_limit
        self.retry_initial = float(retry_initial)
        self.retry_max = float(retry_max)
        self.stream_read_timeout = float(stream_read_timeout)
        self.max_text_chars = max_text_chars

    def close(self) -> None:
        """Close the HTTP session of the client the source built (not a client passed in)."""
        if self._owns_client:
            self.client.session.close()

    # -- polling --

    def fetch_mentions(
        self, since_id: str | None, stop: threading.Event | None = None
    ) -> list[Any]:
        """Mention notifications newer than ``since_id``, oldest first, across all pages.

        Without ``since_id`` (a first run) only the newest page is fetched rather than the
        account's whole history. Returns ``[]`` if ``stop`` is set before the last page: pages
        come newest first, so a partial fetch would leave a gap behind its checkpoint.
        Raises :class:`RateLimitedError`, :class:`PlatformUnavailableError` or
        :class:`ChannelError`.
        """
        collected: list[Any] = []
        max_id: str | None = None
        while True:
            # Mastodon.py's fetch_next drops since_id from the next page's parameters, so the
            # max_id walk is done here, keeping since_id on every page.
            page = self._call(
                self.client.notifications,
                types=["mention"],
                since_id=since_id,
                max_id=max_id,
                limit=self.page_limit,
            )
            if not isinstance(page, list):
                raise PlatformUnavailableError("mastodon: notifications did not return a list")
            reached = False  # the page reaches back to since_id: nothing older is wanted
            for notification in page:
                nid = _notification_id(notification)
                if since_id is not None and nid is not None and not _is_newer(nid, since_id):
                    reached = True
                else:
                    collected.append(notification)
            if since_id is None or not page or reached:
                break
            next_max = self._next_max_id(page)
            if next_max is None or (max_id is not None and not _is_newer(max_id, next_max)):
                break
            max_id = next_max
            if stop is not None and stop.is_set():
                return []
        collected.reverse()
        return collected

    @staticmethod
    def _next_max_id(page: Sequence[Any]) -> str | None:
        info = getattr(page, "_pagination_next", None)
        if not info or info.get("max_id") is None:
            return None  # no Link rel="next": the server says this was the last page
        return str(info["max_id"])

    def _call(self, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except MastodonError as exc:
            raise channel_error(exc, self.client.ratelimit_reset) from exc

    def _retry_delay(self, exc: ChannelError, failures: int) -> float:
        if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
            return min(max(exc.retry_after, self.retry_initial), MAX_RATE_LIMIT_WAIT)
        return min(self.retry_max, self.retry_initial * 2.0**failures)

    # -- turning notifications into items --

    def _item(self, notification: Any) -> Post | Rejected | None:
        """A Post, a Rejected, or None for a notification that is not a mention."""
        if not isinstance(notification, Mapping):
            return self._rejected(notification, "notification is not an object")
        if notification.get("type") != "mention":
            return None
        try:
            status = notification.get("status")
            if not isinstance(status, Mapping):
                raise PayloadError("notification.status is missing")
            return parse_status(status, self.max_text_chars)
        except PayloadError as exc:
            return self._rejected(notification, str(exc))

    @staticmethod
    def _rejected(notification: Any, reason: str) -> Rejected:
        return Rejected(source=PLATFORM, reason=reason, raw=raw_json(notification))

    def _items(
        self, notifications: Sequence[Any], cursor: _Cursor, *, covered: bool
    ) -> list[Post | Rejected]:
        """Items for notifications in order, skipping ones already delivered.

        ``covered`` says nothing older can be missing (a poll, or a stream after its covering
        poll), so the cursor may advance past these notifications.
        """
        items: list[Post | Rejected] = []
        for notification in notifications:
            nid = _notification_id(notification)
            if nid is None:  # no position to record, but the mention may still be whole
                item = self._item(notification)
                if item is not None:
                    items.append(item)
                continue
            already = cursor.seen(nid) or (
                covered and cursor.since_id is not None and not _is_newer(nid, cursor.since_id)
            )
            if covered:
                cursor.since_id = _newest(cursor.since_id, nid)
            if already:
                continue
            cursor.remember(nid)
            item = self._item(notification)
            if item is not None:
                items.append(item)
        return items

    @staticmethod
    def _batch(items: list[Post | Rejected], cursor: _Cursor) -> Batch:
        # cursor.since_id only ever advances over covered notifications, so it is always a
        # safe checkpoint, even for a batch of stream items that are not covered yet.
        if cursor.since_id is None:
            return Batch(items=items)
        cursor.saved = cursor.since_id
        return Batch(items=items, checkpoint=(CHECKPOINT_NAME, cursor.since_id))

    # -- the loop --

    def batches(self, stop: threading.Event, checkpoint: CheckpointGetter) -> Iterator[Batch]:
        """Yield batches of mentions until ``stop`` is set.

        Polls first, then streams; while the stream is down it polls every ``poll_interval``
        and tries the stream again with a doubling delay. Rate limits and outages delay the
        next poll instead of ending the iteration; other channel errors (a revoked token)
        are raised as :class:`ChannelError`.
        """
        loop = _Loop(self, _Cursor(checkpoint(CHECKPOINT_NAME)))
        try:
            while not stop.is_set():
                if time.monotonic() >= loop.next_poll_at:
                    yield from loop.poll(stop)
                    if stop.is_set():
                        break
                loop.maybe_start_stream()
                batch = loop.wait_for_stream()
                if batch is not None:
                    yield batch
        finally:
            loop.close()


class _Loop:
    """The state of one :meth:`MastodonSource.batches` run: when to poll, the stream, backoff."""

    def __init__(self, source: MastodonSource, cursor: _Cursor) -> None:
        self.source = source
        self.cursor = cursor
        self.events: queue.Queue[_Event] = queue.Queue()
        self.stream: _StreamWorker | None = None
        self.next_poll_at = 0.0
        self.next_stream_at = 0.0
        self.poll_failures = 0
        self.stream_delay = source.poll_interval
        self.stream_cap = max(source.poll_interval, source.retry_max)

    def poll(self, stop: threading.Event) -> Iterator[Batch]:
        """Catch up from the cursor; on a rate limit or outage, schedule a retry instead."""
        src = self.source
        stream = self.stream
        covering = stream if stream is not None and stream.connected_at is not None else None
        try:
            found = src.fetch_mentions(self.cursor.since_id, stop)
        except (RateLimitedError, PlatformUnavailableError) as exc:
            delay = src._retry_delay(exc, self.poll_failures)
            self.poll_failures += 1
            log.warning("mastodon: poll failed, retrying in %.1fs: %s", delay, exc)
            self.next_poll_at = time.monotonic() + delay
            return
        if stop.is_set():
            return
        self.poll_failures = 0
        for start in range(0, len(found), src.page_limit):
            items = src._items(found[start : start + src.page_limit], self.cursor, covered=True)
            if items or self.cursor.since_id != self.cursor.saved:
                yield src._batch(items, self.cursor)
        if covering is not None and covering is self.stream:
            covering.covered = True
            self.next_poll_at = math.inf  # the live stream carries on from here
        else:
            self.next_poll_at = time.monotonic() + src.poll_interval

    def maybe_start_stream(self) -> None:
        src = self.source
        if src.use_streaming and self.stream is None and time.monotonic() >= self.next_stream_at:
            self.stream = _StreamWorker(src.client, self.events, src.stream_read_timeout)
            self.stream.start()

    def wait_for_stream(self) -> Batch | None:
        """Wait briefly for stream events; a batch of what arrived, if any."""
        deadline = self.next_poll_at
        if self.source.use_streaming and self.stream is None:
            deadline = min(deadline, self.next_stream_at)
        wait = min(_EVENT_WAIT, max(0.0, deadline - time.monotonic()))
        try:
            event = self.events.get(timeout=wait) if wait > 0 else self.events.get_nowait()
        except queue.Empty:
            return None
        items: list[Post | Rejected] = []
        taken = 0
        while True:
            if isinstance(event, _Received):
                taken += 1
            items.extend(self._handle(event))
            if taken >= self.source.page_limit:
                break
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
        return self.source._batch(items, self.cursor) if items else None

    def _handle(self, event: _Event) -> list[Post | Rejected]:
        stream = self.stream
        if stream is None or event.stream is not stream:
            return []  # from a stream already given up on
        if isinstance(event, _Received):
            return self.source._items([event.notification], self.cursor, covered=stream.covered)
        if isinstance(event, _Connected):
            stream.connected_at = time.monotonic()
            self.next_poll_at = time.monotonic()  # poll now to cover the time before connecting
            log.info("mastodon: stream connected")
            return []
        lived = 0.0 if stream.connected_at is None else time.monotonic() - stream.connected_at
        if lived >= STREAM_STABLE_AFTER:
            self.stream_delay = self.source.poll_interval
        log.warning(
            "mastodon: stream ended (%s); polling, stream again in %.1fs",
            event.error or "closed by server",
            self.stream_delay,
        )
        self.next_stream_at = time.monotonic() + self.stream_delay
        self.stream_delay = min(self.stream_delay * 2, self.stream_cap)
        stream.close(wait=0)
        self.stream = None
        self.next_poll_at = time.monotonic()  # poll now, then every poll_interval
        return []

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
