"""The ``geo:`` settings section, and building the locator from it.

The models follow ``bot.config``'s pattern (frozen pydantic, unknown keys refused) so that
``GeoSettings`` can become ``Settings.geo`` as is. Until then :func:`build_locator` takes a
``GeoSettings`` made by the caller (defaults: the sample bank's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.geo.geocoder import CachedGeocoder, OfflineGeocoder, ProfileGeocoder, online_geocoder
from bot.geo.locate import Locator, LocatorOptions
from bot.geo.registry import load_registry

#: Shorthands for the sample bank's cities, as customers write them.
DEFAULT_CITY_ALIASES: dict[str, tuple[str, ...]] = {
    "London": ("ldn", "london town"),
    "Manchester": ("manc", "mcr", "greater manchester"),
}


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GeocoderSettings(_Section):
    """Which geocoder reads profile locations: ``offline`` (default) or a geopy service name."""

    name: str = Field(default="offline", min_length=1)  # offline | nominatim | photon | …
    kwargs: dict[str, Any] = Field(default_factory=dict)  # e.g. {user_agent: "triagebot/1 (ops@…)"}
    min_population: Literal[500, 1000, 5000, 15000] = 15000  # offline: smallest city known
    min_delay_seconds: float = Field(default=1.0, ge=0, le=60)  # online: RateLimiter spacing
    max_retries: int = Field(default=2, ge=0, le=10)
    error_wait_seconds: float = Field(default=2.0, ge=0, le=60)
    cache_ttl_hours: int = Field(default=720, ge=1)  # online answers kept in Redis


class GeoSettings(_Section):
    """Locating the branch a post is about (see ``bot.geo.locate`` for the rules)."""

    branches_file: Path = Path("config/branches.yaml")
    radius_m: float = Field(default=400, gt=0, le=2000)
    margin_m: float = Field(default=75, ge=0, le=1000)
    region_km: float = Field(default=25, gt=0, le=200)
    neighbourhood_km: float = Field(default=3, gt=0, le=50)
    bbox_margin_m: float = Field(default=150, ge=0, le=5000)
    min_confidence: float = Field(default=0.5, ge=0, le=1)
    city_aliases: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: dict(DEFAULT_CITY_ALIASES)
    )
    geocoder: GeocoderSettings = GeocoderSettings()

    def options(self) -> LocatorOptions:
        return LocatorOptions(
            radius_m=self.radius_m,
            margin_m=self.margin_m,
            region_km=self.region_km,
            neighbourhood_km=self.neighbourhood_km,
            bbox_margin_m=self.bbox_margin_m,
            min_confidence=self.min_confidence,
            city_aliases=self.city_aliases,
        )


def build_geocoder(
    settings: GeocoderSettings, redis_client: Any = None, key_prefix: str = "triage"
) -> ProfileGeocoder:
    """The configured geocoder behind the never-raising front; online ones are rate-limited
    and, given a Redis client, cached under ``<key_prefix>:geocode:<service>``."""
    if settings.name == "offline":
        return ProfileGeocoder(OfflineGeocoder(settings.min_population))
    limited = online_geocoder(
        settings.name,
        settings.kwargs,
        min_delay_seconds=settings.min_delay_seconds,
        max_retries=settings.max_retries,
        error_wait_seconds=settings.error_wait_seconds,
    )
    if redis_client is None:
        return ProfileGeocoder(limited)
    cached = CachedGeocoder(
        limited,
        redis_client,
        prefix=f"{key_prefix}:geocode:{settings.name}",
        ttl=settings.cache_ttl_hours * 3600,
    )
    return ProfileGeocoder(cached)


def build_locator(
    settings: GeoSettings | None = None,
    root: Path | None = None,
    redis_client: Any = None,
    key_prefix: str = "triage",
) -> Locator:
    """A locator for the registry in ``settings.branches_file`` (relative to ``root``)."""
    settings = settings or GeoSettings()
    path = settings.branches_file
    if not path.is_absolute():
        path = (root or Path(__file__).resolve().parents[2]) / path
    registry = load_registry(path)
    geocoder = build_geocoder(settings.geocoder, redis_client, key_prefix)
    return Locator(registry, geocoder, settings.options())
