"""Building the locator and its geocoder from the ``geo:`` settings section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.config import GeocoderSettings, GeoSettings
from bot.geo.geocoder import CachedGeocoder, OfflineGeocoder, ProfileGeocoder, online_geocoder
from bot.geo.locate import Locator, LocatorOptions
from bot.geo.registry import load_registry


def locator_options(settings: GeoSettings) -> LocatorOptions:
    return LocatorOptions(
        radius_m=settings.radius_m,
        margin_m=settings.margin_m,
        region_km=settings.region_km,
        neighbourhood_km=settings.neighbourhood_km,
        bbox_margin_m=settings.bbox_margin_m,
        min_confidence=settings.min_confidence,
        city_aliases=settings.city_aliases,
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
    return Locator(registry, geocoder, locator_options(settings))
