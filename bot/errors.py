"""Every error triagebot raises on purpose, rooted at :class:`TriageError`.

Platform SDK errors are converted at the channel edge so callers (workers, the listener)
decide about retries without importing any SDK::

    TriageError
    ├── ConfigError(ValueError)            settings, branches or routing are invalid
    ├── StoreError                         Redis is unusable for triagebot
    │   └── RedisPolicyError               eviction policy would silently drop state
    ├── PayloadError(ValueError)           a platform payload cannot become a Post
    ├── LockHeldError                      another listener holds the stream lock
    ├── ChannelError                       a platform call failed
    │   ├── RateLimitedError               429: retry after ``retry_after`` seconds
    │   ├── PlatformUnavailableError       5xx, timeouts, dropped connections
    │   ├── DuplicateContentError          the platform refused an identical post (final)
    │   └── InvalidRuleError(ValueError)   the platform rejected a stream rule
    ├── DataError(ValueError)              a training or evaluation file is invalid
    ├── UnknownBranchError(LookupError)    a branch id that is not in the registry
    ├── UnknownCategoryError(LookupError)  a category without a routing rule
    ├── RenderError(ValueError)            a template's output is too long or cannot fit
    └── NotifyError                        paging: links and deliveries
        ├── LinkError(ValueError)          a console link cannot be used
        │   ├── InvalidLinkError           bad signature or malformed token
        │   ├── ExpiredLinkError           signed longer ago than the action allows
        │   ├── WrongLinkActionError       signed for another action
        │   └── LinkReplayedError          the link's action was already used
        ├── DeliveryError                  one attempt on one route failed: worth retrying
        │   ├── DeliveryUncertainError     timed out: the provider may have delivered it
        │   └── RouteUnavailableError      this route cannot be used now (final for the route)
        │       └── UnsafeTargetError      a webhook target in a private/loopback network
        ├── PageFailedError                every route of a person failed: the job retries
        └── LeaseLostError                 another worker took over a delivery (lease expired)

apprise outcomes and itsdangerous exceptions are converted to these at the notify edge.
"""

from __future__ import annotations


class TriageError(Exception):
    """Root of every error triagebot raises on purpose."""


class ConfigError(TriageError, ValueError):
    """A setting is invalid; the message names the file, the key and the problem."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        super().__init__(f"{source}: {key}: {problem}")


class StoreError(TriageError):
    """Redis cannot be used as triagebot's store."""


class RedisPolicyError(StoreError):
    """The Redis server is configured in a way that would lose triagebot's state."""


class PayloadError(TriageError, ValueError):
    """A platform payload cannot be turned into a Post; the message says why."""


class LockHeldError(TriageError):
    """Another process holds a lock this process needs."""


class ChannelError(TriageError):
    """A call to a social platform failed."""


class RateLimitedError(ChannelError):
    """The platform answered 429; ``retry_after`` is in seconds when the platform said."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class PlatformUnavailableError(ChannelError):
    """The platform answered 5xx, timed out or dropped the connection: worth retrying."""


class DuplicateContentError(ChannelError):
    """The platform refused an identical post: a final state, never retried."""


class InvalidRuleError(ChannelError, ValueError):
    """The platform rejected a filtered-stream rule."""


class DataError(TriageError, ValueError):
    """A training or evaluation file is invalid; the message names the row and column."""


class UnknownBranchError(TriageError, LookupError):
    """A branch id that is not in the registry."""


class UnknownCategoryError(TriageError, LookupError):
    """A complaint category that routing.yaml has no rule for."""


class RenderError(TriageError, ValueError):
    """A template rendered to more text than allowed, or could not fit a length limit."""


class NotifyError(TriageError):
    """Paging someone, or using a console link, failed."""


class LinkError(NotifyError, ValueError):
    """A console link cannot be used; the message is safe to show to its holder."""


class InvalidLinkError(LinkError):
    """The token is malformed or its signature does not match."""


class ExpiredLinkError(LinkError):
    """The token is older than the action allows."""


class WrongLinkActionError(LinkError):
    """The token was signed for another action (a view link used to acknowledge, ...)."""


class LinkReplayedError(LinkError):
    """The token's action was already done once; links are single-use per action."""


class DeliveryError(NotifyError):
    """One attempt to send one message on one route failed; retrying may succeed."""


class DeliveryUncertainError(DeliveryError):
    """The attempt timed out: the provider may or may not have accepted the message."""


class RouteUnavailableError(DeliveryError):
    """The route cannot be used now (no credentials, no webhook for the channel, refused
    target): retrying it is pointless, the next route is tried."""


class UnsafeTargetError(RouteUnavailableError):
    """A webhook URL points into a private, loopback or link-local network (SSRF guard)."""


class PageFailedError(NotifyError):
    """Every route of a person failed on every attempt; RQ retries the job later."""


class LeaseLostError(NotifyError):
    """This worker's claim on a delivery expired and another worker took it over."""
