"""Sending a page: one message on one route through apprise, then a person's routes in order.

:func:`send_route` is the edge: apprise's ``False``, its exceptions and socket timeouts become
:class:`DeliveryError` subclasses here, so nothing above imports apprise. A timeout is
*uncertain* (:class:`DeliveryUncertainError`): the provider may have accepted the message.

:func:`deliver` walks a person's routes: each route is retried with doubling backoff, then the
next route is tried. Every attempt goes through a :class:`Journal` (Redis-backed, see
``workers.pages``) *before* the call and after it, so a worker that dies mid-call leaves an
attempt marked "sending": the next run knows the outcome is uncertain and, unless the route's
provider drops repeats of the same idempotency id, does not send again (see
:mod:`bot.store.pages` for what this guarantees).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import quote, urlsplit

import apprise

from bot.errors import (
    DeliveryError,
    DeliveryUncertainError,
    RouteUnavailableError,
    UnsafeTargetError,
)
from bot.notify.messages import Message
from bot.notify.settings import NotifySettings

log = logging.getLogger(__name__)

Outcome = Literal["sent", "uncertain", "failed"]
# apprise schemes whose host comes straight from configuration: checked against SSRF.
WEBHOOK_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls"})
_EMAIL_SCHEMES = frozenset({"mailto", "mailtos"})
_HTTP_CODE = re.compile(r"error=(\d{3})")


@dataclass(frozen=True, slots=True)
class Route:
    """One way to reach a person, as listed in their plan entry."""

    kind: str  # sms | email | chat
    target: str  # phone number, email address or chat target ("slack:#ldn-camden")


def preload() -> None:
    """Import apprise's plugins now (a worker calls this before forking work horses, so each
    horse does not spend half a second importing them for its one page)."""
    with warnings.catch_warnings():
        # apprise's PGP support imports the deprecated stdlib imghdr; nothing to act on here.
        warnings.simplefilter("ignore", DeprecationWarning)
        apprise.Apprise.instantiate("json://localhost", suppress_exceptions=True)


def idempotency_id(delivery_id: str, index: int, kind: str) -> str:
    """The id of one page on one route, the same on every run of the delivery: derived from
    (incident, step, person) - the delivery id - and the route's position and kind."""
    digest = hashlib.sha256(f"{delivery_id}|{index}|{kind}".encode()).hexdigest()[:24]
    return f"tb-{digest}"


def mask_target(kind: str, target: str) -> str:
    """The target as it may appear on a timeline: enough to recognise, not to reuse."""
    if kind == "sms":
        digits = target.strip()
        return (
            digits[:3] + "*" * max(0, len(digits) - 6) + digits[-3:] if len(digits) > 6 else "***"
        )
    if kind == "email" and "@" in target:
        local, _, domain = target.partition("@")
        return f"{local[:1]}***@{domain}"
    return target  # chat channel names are not personal


def send_route(notify: NotifySettings, route: Route, message: Message, idempotency_id: str) -> None:
    """Send ``message`` on ``route`` once; DeliveryError (or a subclass) if it did not go."""
    cfg = notify.route(route.kind)
    if cfg is None:
        raise RouteUnavailableError(f"unknown route kind {route.kind!r}")
    try:
        url = notify.apprise_url(route.kind, route.target)
    except LookupError as exc:
        raise RouteUnavailableError(str(exc)) from None
    scheme = url.split("://", 1)[0].lower()
    if scheme in WEBHOOK_SCHEMES and not notify.allow_private_webhook_targets:
        check_public_target(url)
    url = _with_params(url, scheme, idempotency_id, cfg.timeout_seconds, message.body_format)

    asset = apprise.AppriseAsset(
        storage_mode="memory",  # no cache files written by a worker
        service_timeout=0,  # no abandoned sender threads: the socket timeouts bound each call
        interpret_emojis=False,  # customer text stays as written
        http_redirects=False,  # a redirect must not take a webhook somewhere unchecked
    )
    client = apprise.Apprise(asset=asset)
    if not client.add(url):
        raise RouteUnavailableError(f"apprise cannot use the {route.kind} URL (check the settings)")
    try:
        result = client.notify(
            body=message.body, title=message.title, body_format=message.body_format
        )
    except Exception as exc:  # apprise reports failures in the result; anything else is a bug
        raise DeliveryError(f"{route.kind}: apprise raised {type(exc).__name__}") from exc
    if result:
        return
    text = " ".join(e.message for e in result.logs())
    code = _HTTP_CODE.search(text)
    low = text.lower()
    # No answer: an HTTP status or a refusal is an answer; apprise's "connection error while
    # submitting email" comes from connecting or logging in, before any message went out.
    answered = code is not None or "refused" in low or "error while submitting" in low
    if result.status == apprise.AppriseResultStatus.TIMEOUT or (
        not answered and _waited_out(result, cfg.timeout_seconds)
    ):
        raise DeliveryUncertainError(f"{route.kind}: no answer in time; the provider may have it")
    reason = f"HTTP {code.group(1)}" if code else _short_reason(text)
    raise DeliveryError(f"{route.kind}: {reason}")


def _waited_out(result: apprise.AppriseResult, read_timeout: float) -> bool:
    """True when the last attempt ran into the read timeout: the request went out and no
    answer came, so the provider may have it. apprise 2.2 reports socket errors only at
    DEBUG level (which would also log payloads), so the attempt's duration tells: a refused
    or unreachable connection fails fast, and the connect timeout is half the read timeout."""
    elapsed = [a.elapsed for r in result.results for a in r.attempts]
    return bool(elapsed) and elapsed[-1] >= 0.9 * read_timeout


def _short_reason(text: str) -> str:
    low = text.lower()
    if "recipient" in low and "refused" in low:
        return "recipient refused by the server"
    if "connection" in low or "socket" in low or "refused" in low:
        return "connection failed"
    return "not delivered"


def _with_params(url: str, scheme: str, idempotency_id: str, timeout: float, fmt: str) -> str:
    """The URL with timeouts, body format and the idempotency id where the scheme carries it."""
    # Email: smtplib applies the one timeout (cto) to every socket operation. HTTP: the
    # connect timeout is half the read timeout, so the two can be told apart afterwards.
    cto = timeout if scheme in _EMAIL_SCHEMES else timeout / 2
    params = [f"cto={cto:g}", f"rto={timeout:g}", f"format={fmt}"]
    pid = quote(idempotency_id, safe="")
    if scheme in WEBHOOK_SCHEMES:
        # A body field and a header: receivers that dedupe use one or the other.
        params += [f":idempotency_id={pid}", f"+Idempotency-Key={pid}"]
    elif scheme in _EMAIL_SCHEMES:
        # apprise always writes its own Message-ID after custom headers; a second Message-ID
        # header breaks RFC 5322 (Gmail refuses it), so the stable id travels in its own
        # header and in the message footer.
        params.append(f"+X-Triage-Page-Id={pid}")
    return url + ("&" if "?" in url else "?") + "&".join(params)


def check_public_target(url: str) -> None:
    """UnsafeTargetError unless every address the URL's host resolves to is public.

    Resolution happens again when the request is made; a DNS answer that changes in between
    (rebinding) is not caught here - put webhook egress behind a proxy for that.
    """
    host = urlsplit(url).hostname
    if not host:
        raise RouteUnavailableError("webhook URL has no host")
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise DeliveryError(f"webhook host does not resolve ({exc.strerror or exc})") from None
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_global or ip.is_multicast:
            raise UnsafeTargetError(
                f"webhook host {host} resolves to a non-public address ({ip}); refused "
                "(notify.allow_private_webhook_targets)"
            )


class Journal(Protocol):
    """Where :func:`deliver` records each attempt before and after making it."""

    def route_state(self, index: int) -> tuple[str, int]:
        """(state, attempts made) of route ``index``: state "" (untried), "sending" (an
        attempt started and never finished), "failed", "exhausted" or "unavailable"."""
        ...

    def begin(self, index: int, route: Route, attempt: int) -> None:
        """Mark the attempt as started (and extend the lease); LeaseLostError if lost."""
        ...

    def sent(self, index: int, route: Route, attempt: int) -> None: ...

    def failed(
        self, index: int, route: Route, attempt: int, error: DeliveryError, final: bool
    ) -> None: ...

    def uncertain(self, index: int, route: Route, attempt: int, reason: str) -> None: ...

    def wait(self, seconds: float) -> None:
        """Sleep before the next attempt, keeping the lease."""
        ...


Sender = Callable[[NotifySettings, Route, Message, str], None]


def deliver(
    notify: NotifySettings,
    routes: list[Route],
    compose: Callable[[Route], Message],
    idempotency_id: Callable[[int, Route], str],
    journal: Journal,
    sender: Sender = send_route,
) -> Outcome:
    """Try ``routes`` in order until one takes the page; "sent", "uncertain" or "failed".

    A route gets ``attempts`` tries with doubling backoff. A route left "sending" by a worker
    that died, or an attempt that timed out, has an uncertain outcome: it is sent again (same
    idempotency id) only when the route's provider dedupes, otherwise delivery stops as
    "uncertain" so the person is never paged twice for the step.
    """
    for index, route in enumerate(routes):
        state, made = journal.route_state(index)
        if state in ("exhausted", "unavailable"):
            continue
        cfg = notify.route(route.kind)
        if cfg is None:
            err = RouteUnavailableError(f"unknown route kind {route.kind!r}")
            journal.failed(index, route, made, err, True)
            continue
        limit = cfg.attempts
        if state == "sending":
            if not cfg.provider_dedupes:
                journal.uncertain(
                    index,
                    route,
                    made,
                    "a worker stopped during this attempt; not sent again because the "
                    "provider does not drop repeats",
                )
                return "uncertain"
            limit = max(limit, made + 1)  # resend once with the same id: the provider dedupes
        attempt = made
        while attempt < limit:
            attempt += 1
            if attempt > 1 and state != "sending":
                journal.wait(cfg.backoff_seconds * 2 ** (attempt - 2))
            state = ""
            journal.begin(index, route, attempt)
            try:
                sender(notify, route, compose(route), idempotency_id(index, route))
            except RouteUnavailableError as exc:
                journal.failed(index, route, attempt, exc, True)
                break
            except DeliveryUncertainError as exc:
                if not cfg.provider_dedupes:
                    journal.uncertain(index, route, attempt, str(exc))
                    return "uncertain"
                journal.failed(index, route, attempt, exc, attempt >= limit)
            except DeliveryError as exc:
                journal.failed(index, route, attempt, exc, attempt >= limit)
            else:
                journal.sent(index, route, attempt)
                return "sent"
    return "failed"
