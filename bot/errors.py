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
    └── UnknownCategoryError(LookupError)  a category without a routing rule
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
