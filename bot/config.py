"""Settings: ``config/settings.yaml`` plus ``TRIAGE_*`` environment overrides, validated once.

Load with :func:`load_settings` at process start and pass the result in; nothing reads the
environment at import time. Any invalid value raises :class:`~bot.errors.ConfigError` naming the
file (or environment variable), the key and the problem. Secrets come only from the
environment and are held as ``SecretStr`` so they never appear in logs or reprs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from bot.errors import ConfigError
from bot.notify.settings import NotifySettings

ENV_PREFIX = "TRIAGE_"
_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SECRET_ENV = {
    "x_bearer_token": "TRIAGE_X_BEARER_TOKEN",
    "x_consumer_key": "TRIAGE_X_CONSUMER_KEY",
    "x_consumer_secret": "TRIAGE_X_CONSUMER_SECRET",
    "x_access_token": "TRIAGE_X_ACCESS_TOKEN",
    "x_access_token_secret": "TRIAGE_X_ACCESS_TOKEN_SECRET",
    "mastodon_access_token": "TRIAGE_MASTODON_ACCESS_TOKEN",
    "secret_key": "TRIAGE_SECRET_KEY",
}
_SECRET_WORDS = ("token", "secret", "password", "api_key")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CompanySettings(_Section):
    name: str = Field(min_length=1)
    x_handle: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_]{1,15}$")
    mastodon_handle: str = ""


class RedisSettings(_Section):
    url: str | None = None
    data_dir: Path = Path("var/redis")
    key_prefix: str = Field(default="triage", pattern=r"^[A-Za-z0-9_.-]+$")


class IngestSettings(_Section):
    stream: str = Field(default="posts", min_length=1)
    consumer_group: str = Field(default="triage", min_length=1)
    batch_size: int = Field(default=500, ge=1, le=10_000)
    batch_wait_ms: int = Field(default=100, ge=0, le=10_000)
    dedupe_ttl_hours: int = Field(default=168, ge=1)
    lock_ttl_seconds: int = Field(default=30, ge=2, le=600)
    max_text_chars: int = Field(default=25_000, ge=1)


class StreamRule(_Section):
    value: str = Field(min_length=1, max_length=1024)
    tag: str = ""


class XSettings(_Section):
    enabled: bool = True
    mode: Literal["stream", "mentions"] = "stream"
    api_base_url: str | None = Field(default=None, pattern=r"^https?://[^/\s]+/?$")
    rules: tuple[StreamRule, ...] = ()
    stream_timeout_seconds: float = Field(default=21, gt=0, le=600)
    backfill_minutes: int = Field(default=0, ge=0, le=5)
    mentions_poll_seconds: float = Field(default=60, gt=0)
    mentions_page_size: int = Field(default=100, ge=5, le=100)


class MastodonSettings(_Section):
    enabled: bool = False
    api_base_url: str = Field(default="https://mastodon.example", pattern=r"^https?://\S+$")
    streaming: bool = True
    poll_seconds: float = Field(default=30, gt=0)


class SpikeSettings(_Section):
    window_minutes: float = Field(default=5, gt=0)
    baseline_hours: float = Field(default=24, gt=0)
    min_count: int = Field(default=5, ge=2)
    factor: float = Field(default=4.0, gt=1)


class TriageSettings(_Section):
    batch_size: int = Field(default=64, ge=1, le=5_000)
    block_ms: int = Field(default=1000, ge=1)
    reclaim_idle_seconds: float = Field(default=60, gt=0)
    group_window_minutes: float = Field(default=90, gt=0)
    spike: SpikeSettings = SpikeSettings()


#: Shorthands for the sample bank's cities, as customers write them.
DEFAULT_CITY_ALIASES: dict[str, tuple[str, ...]] = {
    "London": ("ldn", "london town"),
    "Manchester": ("manc", "mcr", "greater manchester"),
}


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


DEFAULT_QUEUES = ("pages", "replies", "housekeeping")


class WorkerSettings(_Section):
    """RQ worker timing (settings ``workers:`` section)."""

    queues: tuple[str, ...] = DEFAULT_QUEUES
    job_monitoring_interval_seconds: int = Field(default=5, ge=1, le=300)
    heartbeat_grace_seconds: int = Field(default=15, ge=2, le=600)
    worker_ttl_seconds: int = Field(default=35, ge=20, le=3600)
    maintenance_interval_seconds: int = Field(default=15, ge=5, le=3600)
    with_scheduler: bool = True

    @model_validator(mode="after")
    def _grace_covers_monitoring(self) -> WorkerSettings:
        if self.heartbeat_grace_seconds <= self.job_monitoring_interval_seconds:
            raise ValueError(
                "heartbeat_grace_seconds must exceed job_monitoring_interval_seconds, or live "
                "jobs would be judged abandoned"
            )
        return self


class Secrets(_Section):
    """API credentials, from the environment only."""

    x_bearer_token: SecretStr | None = None
    x_consumer_key: SecretStr | None = None
    x_consumer_secret: SecretStr | None = None
    x_access_token: SecretStr | None = None
    x_access_token_secret: SecretStr | None = None
    mastodon_access_token: SecretStr | None = None
    secret_key: SecretStr | None = None


class Settings(_Section):
    """Everything a triagebot process needs to know, immutable once loaded."""

    config_dir: Path
    company: CompanySettings
    redis: RedisSettings = RedisSettings()
    ingest: IngestSettings = IngestSettings()
    x: XSettings = XSettings()
    mastodon: MastodonSettings = MastodonSettings()
    triage: TriageSettings = TriageSettings()
    geo: GeoSettings = GeoSettings()
    notify: NotifySettings = NotifySettings()
    workers: WorkerSettings = WorkerSettings()
    secrets: Secrets = Secrets()

    @property
    def root(self) -> Path:
        """The folder relative paths in settings are resolved against (config's parent)."""
        return self.config_dir.parent

    def path(self, p: Path) -> Path:
        return p if p.is_absolute() else self.root / p


def default_config_dir() -> Path:
    """``config/`` of the checkout this package runs from."""
    return Path(__file__).resolve().parent.parent / "config"


def load_settings(
    config_dir: Path | str | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read ``settings.yaml`` in ``config_dir``, apply environment overrides, validate."""
    env = os.environ if environ is None else environ
    cdir = Path(config_dir or env.get("TRIAGE_CONFIG_DIR") or default_config_dir()).resolve()
    file = cdir / "settings.yaml"
    data = read_yaml(file)
    _refuse_secrets_in_file(data, str(file))
    origins: dict[str, str] = {}
    _apply_env_overrides(data, env, origins)
    if env.get("REDIS_URL"):
        data.setdefault("redis", {})["url"] = env["REDIS_URL"]
        origins["redis.url"] = "REDIS_URL"
    data["config_dir"] = str(cdir)
    data["secrets"] = {k: env[v] for k, v in SECRET_ENV.items() if env.get(v)}
    try:
        return Settings.model_validate(data, context={"environ": dict(env)})
    except ValidationError as exc:
        raise _config_error(exc, str(file), origins) from None


def read_yaml(file: Path) -> dict[str, Any]:
    """A YAML mapping from ``file``; errors name the file, line and column."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(file), "(file)", "not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(file), "(file)", f"not UTF-8 text ({exc.reason})") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader, C if available
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ConfigError(
            str(file), where, f"invalid YAML: {getattr(exc, 'problem', exc)}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(file), "(top level)", "must be a mapping of sections")
    return data


def _refuse_secrets_in_file(data: Any, source: str, prefix: str = "") -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            dotted = f"{prefix}{key}"
            if any(w in str(key).lower() for w in _SECRET_WORDS) and value:
                raise ConfigError(
                    source, dotted, "secrets belong in the environment, not in a file (README)"
                )
            _refuse_secrets_in_file(value, source, dotted + ".")


def _apply_env_overrides(
    data: dict[str, Any], env: Mapping[str, str], origins: dict[str, str]
) -> None:
    """``TRIAGE_INGEST__BATCH_SIZE=1000`` sets ``ingest.batch_size``; values are YAML scalars."""
    secret_vars = set(SECRET_ENV.values())
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name or name in secret_vars:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise ConfigError(name, ".".join(path), f"not a valid value: {raw!r}") from None
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(name, ".".join(path), f"{part} is not a section")
            node = child
        node[path[-1]] = value
        origins[".".join(path)] = name


def _config_error(exc: ValidationError, file: str, origins: Mapping[str, str]) -> ConfigError:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    problem = err["msg"]
    if err["type"] == "extra_forbidden":
        problem = "unknown key (misspelt?)"
    elif err["type"] == "missing":
        problem = "required but missing"
    elif "input" in err and not key.startswith("secrets"):
        problem = f"{problem} (got {err['input']!r})"
    source = next((v for k, v in origins.items() if key == k or key.startswith(k + ".")), file)
    more = len(exc.errors()) - 1
    if more:
        problem += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ConfigError(source, key, problem)
