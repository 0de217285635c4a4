"""Paging settings: where the console is, how each route kind becomes an apprise URL, retries,
bundling, timeouts.

Secrets never sit in the file: URL templates name environment variables as ``${TRIAGE_...}``,
resolved when the settings are validated with ``context={"environ": env}`` (what
:func:`bot.config.load_settings` passes) and held as ``SecretStr``. A route kind whose variables
are missing is *unavailable*: pages skip it with a timeline entry saying which variable is
missing, and :meth:`NotifySettings.problems` lists it for ``check-config`` and worker start.

URL templates take ``{target}`` (the route's target, URL-quoted) and ``{channel}`` (a chat
target without its ``slack:`` prefix) besides ``${VAR}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal
from urllib.parse import quote, urlencode

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

RouteKind = Literal["sms", "email", "chat"]
ROUTE_KINDS: tuple[RouteKind, ...] = ("sms", "email", "chat")
_ENV_REF = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
_SMTP_USER_ENV = "TRIAGE_SMTP_USERNAME"
_SMTP_PASSWORD_ENV = "TRIAGE_SMTP_PASSWORD"  # noqa: S105 - a variable name, not a secret


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RouteSettings(_Section):
    """How to send on one route kind, and how hard to try."""

    # apprise URL template; None: email from `smtp`; chat: `chat_webhooks` entries win.
    url: str | None = None
    format: Literal["text", "html", "markdown"] = "text"
    attempts: int = Field(default=2, ge=1, le=10)
    backoff_seconds: float = Field(default=5, ge=0, le=300)  # doubles after each attempt
    timeout_seconds: float = Field(default=10, gt=0, le=120)  # socket connect and read timeout
    # The provider (or the receiving end) drops a repeat of the same idempotency id. Only
    # then is a send with an uncertain outcome (timeout, worker died mid-call) sent again.
    provider_dedupes: bool = False

    @field_validator("url")
    @classmethod
    def _no_literal_credentials(cls, v: str | None) -> str | None:
        if v is not None:
            _check_no_literal_credentials(v)
        return v


class SmtpSettings(_Section):
    """The SMTP relay email pages go through (credentials: TRIAGE_SMTP_USERNAME/_PASSWORD)."""

    host: str = Field(default="localhost", min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    from_address: str = Field(
        default="triagebot@localhost", pattern=r"^[^@\s<>]+@[^@\s<>]+$", max_length=254
    )
    from_name: str = "triagebot"
    security: Literal["starttls", "ssl", "none"] = "starttls"
    auth: bool = False  # log in with TRIAGE_SMTP_USERNAME / TRIAGE_SMTP_PASSWORD


def _default_routes() -> dict[RouteKind, RouteSettings]:
    return {
        "sms": RouteSettings(
            url="twilio://${TRIAGE_TWILIO_ACCOUNT_SID}:${TRIAGE_TWILIO_AUTH_TOKEN}"
            "@${TRIAGE_TWILIO_FROM}/{target}",
            attempts=2,
        ),
        "email": RouteSettings(format="html", attempts=3),
        "chat": RouteSettings(format="markdown", attempts=2),
    }


class NotifySettings(_Section):
    """Everything paging needs to know, immutable once validated."""

    console_base_url: str = Field(
        default="http://localhost:8000", pattern=r"^https?://[^\s/]+(/\S*)?$"
    )
    link_max_age_hours: float = Field(default=72, gt=0, le=24 * 30)
    queue: str = Field(default="pages", pattern=r"^[A-Za-z0-9_.-]+$")
    smtp: SmtpSettings = SmtpSettings()
    routes: dict[RouteKind, RouteSettings] = Field(default_factory=_default_routes)
    # chat target as written in people.yaml ("slack:#ldn-camden") -> apprise URL or ${VAR}
    chat_webhooks: dict[str, str] = Field(default_factory=dict)
    allow_private_webhook_targets: bool = False  # tests set it for loopback sinks
    bundle_window_seconds: int = Field(default=60, ge=0, le=3600)
    bundle_max_items: int = Field(default=10, ge=1, le=50)
    sms_max_chars: int = Field(default=320, ge=70, le=1600)
    # Paging jobs: RQ timeout of one page_step run, and RQ retries (seconds between runs)
    # after a transient failure (every route failed, Redis hiccup, worker died).
    page_job_timeout_seconds: int = Field(default=300, ge=10, le=3600)
    page_retry_seconds: tuple[int, ...] = (5, 30, 120, 600)
    # A claimed delivery is leased for one attempt's worst case plus this margin.
    lease_margin_seconds: float = Field(default=30, ge=1, le=600)
    retention_days: int = Field(default=30, ge=1, le=365)  # paging records kept this long

    _env: dict[str, SecretStr] = PrivateAttr(default_factory=dict)

    @field_validator("routes")
    @classmethod
    def _complete_routes(cls, v: dict[RouteKind, RouteSettings]) -> dict[RouteKind, RouteSettings]:
        defaults = _default_routes()
        return {k: v.get(k, defaults[k]) for k in ROUTE_KINDS}

    @field_validator("chat_webhooks")
    @classmethod
    def _check_webhooks(cls, v: dict[str, str]) -> dict[str, str]:
        for url in v.values():
            _check_no_literal_credentials(url)
        return v

    @field_validator("page_retry_seconds")
    @classmethod
    def _check_retries(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or len(v) > 20 or any(s < 0 or s > 86_400 for s in v):
            raise ValueError("1 to 20 intervals of 0 to 86400 seconds")
        return v

    @model_validator(mode="after")
    def _resolve_environment(self, info: ValidationInfo) -> NotifySettings:
        """Keep the referenced environment variables that are set, as secrets."""
        environ: Mapping[str, str] = (info.context or {}).get("environ") or {}
        wanted = set(self.referenced_env())
        if any(r.url is None for k, r in self.routes.items() if k == "email") and self.smtp.auth:
            wanted |= {_SMTP_USER_ENV, _SMTP_PASSWORD_ENV}
        self._env = {n: SecretStr(environ[n]) for n in sorted(wanted) if environ.get(n)}
        return self

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, object], environ: Mapping[str, str] | None = None
    ) -> NotifySettings:
        """Validate a ``notify:`` section with ``environ`` for its ``${VAR}`` references."""
        return cls.model_validate(dict(data), context={"environ": dict(environ or {})})

    # -- queries ----------------------------------------------------------------------------
    @property
    def link_max_age_seconds(self) -> int:
        return int(self.link_max_age_hours * 3600)

    def route(self, kind: str) -> RouteSettings | None:
        """The settings of route kind ``kind``, None for an unknown kind."""
        return next((r for k, r in self.routes.items() if k == kind), None)

    def attempt_bound_seconds(self, kind: str | None = None) -> float:
        """The longest one attempt on ``kind`` (the slowest kind if None) can block: its
        socket timeout times the blocking steps of the protocol - HTTP: connect, response;
        SMTP: connect and up to seven commands (EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, end)."""
        kinds = [kind] if kind else list(ROUTE_KINDS)
        bounds = []
        for k in kinds:
            route = self.route(k)
            if route is not None:
                bounds.append(route.timeout_seconds * (8 if k == "email" else 2))
        return max(bounds, default=0.0)

    def referenced_env(self) -> list[str]:
        """Every ``${VAR}`` the URL templates and webhooks mention."""
        texts = [r.url or "" for r in self.routes.values()] + list(self.chat_webhooks.values())
        return sorted({m for t in texts for m in _ENV_REF.findall(t)})

    def missing_env(self, text: str) -> list[str]:
        return [n for n in _ENV_REF.findall(text) if n not in self._env]

    def problems(self) -> list[str]:
        """What makes a route kind or chat channel unusable now (missing variables)."""
        out = []
        for kind, route in self.routes.items():
            missing = self.missing_env(route.url or "")
            if kind == "email" and route.url is None and self.smtp.auth:
                missing += [n for n in (_SMTP_USER_ENV, _SMTP_PASSWORD_ENV) if n not in self._env]
            if missing:
                out.append(
                    f"notify.routes.{kind}: environment variable(s) not set: " + ", ".join(missing)
                )
        for target, url in self.chat_webhooks.items():
            missing = self.missing_env(url)
            if missing:
                out.append(
                    f"notify.chat_webhooks[{target!r}]: environment variable(s) not set: "
                    + ", ".join(missing)
                )
        return out

    def apprise_url(self, kind: str, target: str) -> str:
        """The apprise URL for one route, secrets filled in. Never log it.

        Chat: the target's entry in ``chat_webhooks`` if any, else ``routes.chat.url``.
        Email without ``url``: built from ``smtp``. Raises LookupError naming what is missing
        (unknown kind, no URL for the chat target, unset variables); the sender turns that
        into RouteUnavailableError.
        """
        route = self.route(kind)
        if route is None:
            raise LookupError(f"no route kind {kind!r}")
        if kind == "chat" and target in self.chat_webhooks:
            template = self.chat_webhooks[target]
        elif route.url is not None:
            template = route.url
        elif kind == "email":
            return self._email_url(target, route)
        elif kind == "chat":
            raise LookupError(f"no webhook configured for chat target {target!r}")
        else:
            raise LookupError(f"no URL configured for route kind {kind!r}")
        missing = self.missing_env(template)
        if missing:
            raise LookupError("environment variable(s) not set: " + ", ".join(missing))
        whole = _ENV_REF.fullmatch(template.strip())
        if whole:  # the variable holds the whole URL (a chat webhook): use it as it is
            return self._env[whole.group(1)].get_secret_value()
        # {channel}: a chat target without its workspace prefix ("slack:#ldn" -> "#ldn").
        channel = target.split(":", 1)[1] if ":" in target else target
        url = template.replace("{target}", quote(target, safe="")).replace(
            "{channel}", quote(channel, safe="")
        )
        # Values inside a URL are percent-encoded, except "+": apprise reads a sender number
        # in the host part (twilio://sid:token@+4477.../) literally.
        return _ENV_REF.sub(
            lambda m: quote(self._env[m.group(1)].get_secret_value(), safe="+"), url
        )

    def _email_url(self, target: str, route: RouteSettings) -> str:
        smtp = self.smtp
        auth = ""
        if smtp.auth:
            missing = [n for n in (_SMTP_USER_ENV, _SMTP_PASSWORD_ENV) if n not in self._env]
            if missing:
                raise LookupError("environment variable(s) not set: " + ", ".join(missing))
            user = self._env[_SMTP_USER_ENV].get_secret_value()
            password = self._env[_SMTP_PASSWORD_ENV].get_secret_value()
            auth = f"{quote(user, safe='')}:{quote(password, safe='')}@"
        mode = {"starttls": "starttls", "ssl": "ssl", "none": "insecure"}[smtp.security]
        scheme = "mailto" if smtp.security == "none" else "mailtos"
        query = urlencode(
            {
                "smtp": smtp.host,
                "from": smtp.from_address,
                "name": smtp.from_name,
                "to": target,
                "mode": mode,
            }
        )
        return f"{scheme}://{auth}{smtp.host}:{smtp.port}/?{query}"


def _check_no_literal_credentials(url: str) -> None:
    """Refuse a URL template with credentials written in (they belong in the environment)."""
    if "://" not in url:
        if not _ENV_REF.fullmatch(url.strip()):
            raise ValueError("must be an apprise URL (scheme://...) or a ${TRIAGE_...} reference")
        return
    netloc = url.split("://", 1)[1].split("/", 1)[0]
    if "@" in netloc:
        userinfo = netloc.rsplit("@", 1)[0]
        if _ENV_REF.sub("", userinfo).replace(":", ""):
            raise ValueError(
                "credentials in a URL belong in the environment: write ${TRIAGE_...} references"
            )
