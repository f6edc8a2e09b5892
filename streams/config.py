"""Configuration: environment variables over one optional TOML file, validated once."""

from __future__ import annotations

import functools
import os
import tomllib
import warnings
from datetime import date, datetime, time
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from streams.connectors.base import Connector, Source
from streams.connectors.kinds import connectors
from streams.core.alerts import INDICATOR_RULES, INFLOW_ABOVE_OUTFLOW, CrossingPolicy, RulesPolicy
from streams.core.crossing import CrossingRule
from streams.core.flow import Windows
from streams.core.forecast import ForecastPolicy, Target
from streams.core.pull import Part, PullPolicy
from streams.core.scope import Settings
from streams.core.sla import DEFAULT_TARGETS, Calendar, SlaPolicy, Targets
from streams.core.timeline import US_PER_SECOND, WallClock, parse_duration


class SettingsError(ValueError):
    """Settings flowgauge cannot run with, said in one line a person can act on."""

    @classmethod
    def of(cls, error: ValidationError) -> SettingsError:
        """Each refused setting by its key, as the TOML file or the environment names it."""
        reasons = [
            f"{'.'.join(str(part) for part in item['loc']) or 'settings'}: "
            f"{item['msg'].removeprefix('Value error, ')}"
            for item in error.errors(include_url=False)
        ]
        return cls("; ".join(reasons))


def _duration(text: str) -> str:
    parse_duration(text)
    return text.strip().lower()


Duration = Annotated[str, AfterValidator(_duration)]


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):  # a KeyError pydantic would not report
        raise ValueError(f"{value!r} is no IANA time zone, such as Europe/Berlin") from None
    return value


Zone = Annotated[str, AfterValidator(_zone)]

# Below this, one slow batch with input waiting could pass for a stall.
MIN_STALL_RESTART_SECONDS = 10


def _stall_restart(text: str) -> str:
    text = text.strip().lower()
    if text != "off" and parse_duration(text) < MIN_STALL_RESTART_SECONDS:
        raise ValueError(f"stall_restart must be off or at least {MIN_STALL_RESTART_SECONDS}s")
    return text


StallRestart = Annotated[str, AfterValidator(_stall_restart)]


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
# Each secret may be given as a value or as a file to read it from (a mounted Kubernetes
# Secret): ``<name>`` or ``<name>_file``.
SECRETS_FROM_FILES = ("sasl_password", "web_token", "web_password")


def _read_secret(path: Path, name: str) -> SecretStr:
    """A secret's file, its trailing newline dropped; an error names the file, never its text."""
    try:
        return SecretStr(path.read_text(encoding="utf-8").rstrip("\r\n"))
    except OSError as exc:
        raise ValueError(f"{name}_file {path} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{name}_file {path} is not UTF-8 text") from None


PLACEHOLDER = "REPLACE-ME"  # what the shipped manifests (deploy/kubernetes) hold


def _a_secret(secret: SecretStr) -> SecretStr:
    value = secret.get_secret_value()
    if not value:
        raise ValueError("is empty: anyone could present it (leave it out to refuse everyone)")
    if PLACEHOLDER in value:
        raise ValueError(
            f"is still the manifests' placeholder {PLACEHOLDER}: anyone could present it"
        )
    return secret


# A secret set empty (``secret = ""``, a mounted file holding only a newline) or left as the
# manifests' placeholder would be a key or password anyone can present: an HMAC over the
# empty key, basic auth of ":", a bearer token printed in the repository.
Secret = Annotated[SecretStr, AfterValidator(_a_secret)]

ALL_RULES = (INFLOW_ABOVE_OUTFLOW, *INDICATOR_RULES)


def _scope_pattern(pattern: str) -> str:
    if pattern not in ("*", "all") and not pattern.startswith(("queue:", "priority:", "channel:")):
        raise ValueError(f"{pattern!r} is no scope: all, queue:NAME, priority:NAME, channel:NAME")
    return pattern


def _rule_pattern(pattern: str) -> str:
    if not any(fnmatchcase(rule, pattern) for rule in ALL_RULES):
        raise ValueError(f"{pattern!r} matches no rule of {list(ALL_RULES)}")
    return pattern


ScopePattern = Annotated[str, AfterValidator(_scope_pattern)]
RulePattern = Annotated[str, AfterValidator(_rule_pattern)]

Kind = Literal["slack", "teams", "discord", "mattermost", "google_chat", "webhook"]


def _web_url(url: SecretStr) -> SecretStr:
    _http_url(url.get_secret_value())
    return url


def _http_url(url: str) -> str:
    """An absolute http(s) URL with a host: chat platforms refuse a message with any other
    link (Discord: "Not a well formed URL"), and every alert to them would be lost."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an https:// or http:// URL with a host")
    return url


class ChatDestination(BaseModel):
    """One webhook. The URL is a secret: it is masked in repr, dumps and validation errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: str = Field(min_length=1, description="how logs and metrics name this destination")
    kind: Kind
    url: Annotated[SecretStr, AfterValidator(_web_url)]
    per_minute: float = Field(20.0, gt=0, description="sustained posts per minute")
    burst: int = Field(3, ge=1, description="posts allowed back to back before the rate applies")
    timeout_seconds: float = Field(10.0, gt=0, description="one attempt, connect to response")
    scopes: list[ScopePattern] = Field(
        default_factory=lambda: ["*"],
        description="the scopes whose alerts go here: all, queue:billing, queue:*, ...",
    )
    rules: list[RulePattern] = Field(
        default_factory=lambda: ["*"], description="the rules whose alerts go here"
    )
    group_seconds: float = Field(
        0.0,
        ge=0,
        le=3600,
        description="alerts within this long of the first of a group go as one message; 0: "
        "each alone",
    )

    remind_every: Duration | None = Field(
        None,
        description="while a live alert stays firing, remind this often (wall clock); none: never",
    )

    @model_validator(mode="after")
    def _webhooks_one_by_one(self) -> ChatDestination:
        if self.kind == "webhook" and self.group_seconds:
            raise ValueError(
                "a webhook destination is never grouped: its receiver takes one record per "
                "alert_id (set group_seconds only for chat platforms)"
            )
        return self

    def wants(self, rule: str, scope: str) -> bool:
        """Whether an alert of ``rule`` for ``scope`` is posted here."""
        return _matches(self.rules, rule) and _matches(self.scopes, scope)


class Silence(BaseModel):
    """Alerts of the matching rules and scopes are not posted to chat until ``until`` (by the
    wall clock when the alert is handed to chat); they stay on ``backlog.alerts``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: ScopePattern = "*"
    rule: RulePattern = "*"
    until: AwareDatetime
    reason: str = ""

    def mutes(self, rule: str, scope: str, now: datetime) -> bool:
        return now < self.until and _matches([self.rule], rule) and _matches([self.scope], scope)


def _matches(patterns: list[str], name: str) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


_RULE = CrossingRule()


class CrossingConfig(BaseModel):
    """The ``inflow_above_outflow`` rule: see docs/semantics.md, "Indicators and alert rules".

    Setting ``sustain`` or ``clear`` runs the rule of earlier versions, exactly, with its
    keys (``window``, ``min_volume``, ``sustain``, ``clear``); the other keys are the rule's
    of streams/core/crossing.py."""

    model_config = ConfigDict(extra="forbid")

    window: str = "24h"
    min_volume: int = Field(default=10, ge=0)
    sustain: int = Field(default=3, ge=1)
    clear: int = Field(default=3, ge=1)
    span: Duration = _RULE.span
    capacity_window: Duration = _RULE.capacity_window
    history: Duration = f"{_RULE.history_weeks * 7}d"
    spans: int = Field(default=_RULE.spans, ge=1)
    fire_share: float = Field(default=_RULE.fire_share, ge=0)
    fire_z: float = Field(default=_RULE.fire_z, ge=0)
    span_z: float = Field(default=_RULE.span_z, ge=0)
    surge_size: float = Field(default=_RULE.surge_size, gt=0)
    surge_evidence: float = Field(default=_RULE.surge_evidence, gt=0)
    week_share: float = Field(default=_RULE.week_share, ge=0)
    week_z: float = Field(default=_RULE.week_z, ge=0)
    clear_share: float = _RULE.clear_share
    confirm: Duration = f"{_RULE.confirm_hours}h"
    clear_after: Duration = f"{_RULE.clear_hours}h"
    warm_up: Duration = f"{_RULE.warm_up_hours}h"
    min_moved: int = Field(default=_RULE.min_volume, ge=0)

    @model_validator(mode="after")
    def _one_rule(self) -> CrossingConfig:
        old = {"window", "min_volume", "sustain", "clear"} & self.model_fields_set
        new = self.model_fields_set - {"window", "min_volume", "sustain", "clear"}
        if old and not self.legacy:
            raise ValueError(
                f"{sorted(old)} belong to the earlier rule: set sustain or clear to run it"
            )
        if self.legacy and new:
            raise ValueError(f"{sorted(new)} do not apply to the earlier rule (sustain, clear)")
        return self

    @property
    def legacy(self) -> bool:
        return bool({"sustain", "clear"} & self.model_fields_set)

    def policy(self) -> CrossingPolicy | CrossingRule:
        """The rule as the core runs it (``Settings`` checks its windows are configured)."""
        if self.legacy:
            return CrossingPolicy(self.window, self.min_volume, self.sustain, self.clear)
        return CrossingRule(
            span=self.span,
            capacity_window=self.capacity_window,
            span_hours=_hours(self.span),
            capacity_hours=_hours(self.capacity_window),
            history_weeks=max(1, _hours(self.history) // (7 * 24)),
            spans=self.spans,
            fire_share=self.fire_share,
            fire_z=self.fire_z,
            span_z=self.span_z,
            surge_size=self.surge_size,
            surge_evidence=self.surge_evidence,
            week_share=self.week_share,
            week_z=self.week_z,
            clear_share=self.clear_share,
            confirm_hours=max(1, _hours(self.confirm)),
            clear_hours=max(1, _hours(self.clear_after)),
            warm_up_hours=_hours(self.warm_up),
            min_volume=self.min_moved,
        )


def _hours(duration: str) -> int:
    seconds = parse_duration(duration)
    if seconds % 3600:
        raise ValueError(f"{duration}: the crossing rule counts whole hours")
    return seconds // 3600


class TargetsConfig(BaseModel):
    """Business time; ``d`` is a business day (24 h, or a calendar day's working hours)."""

    model_config = ConfigDict(extra="forbid")

    first_response: Duration
    resolution: Duration

    def targets(self) -> Targets:
        return Targets(
            parse_duration(self.first_response) * US_PER_SECOND,
            parse_duration(self.resolution) * US_PER_SECOND,
        )


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class CalendarConfig(BaseModel):
    """Business hours, and the dates without any: ``holidays`` and a country's (or region's).

    A country's public holidays come from the ``holidays`` library, pinned exactly in
    pyproject.toml: its data changes between releases, and ``report`` must give the same
    numbers whenever it runs. They are expanded over ``HOLIDAY_YEARS``, every year an event
    may be dated in (README, "Input from outside") and the next, in about 0.1 s once per
    process and country.
    """

    model_config = ConfigDict(extra="forbid")

    HOLIDAY_YEARS: ClassVar[range] = range(2000, 2101)

    timezone: Zone = "UTC"
    weekdays: list[Weekday] = ["mon", "tue", "wed", "thu", "fri"]
    start: time = time(9)
    end: time = time(17)
    holidays: list[date] = []  # dates in the calendar's time zone, besides the country's
    country: str | None = None  # ISO 3166-1 alpha-2 code, e.g. "DE" or "US"
    subdivision: str | None = None  # the country's region, e.g. "BY" (DE) or "CA" (US)

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        if not cls._known_place(code, None):
            raise ValueError(
                f"{value!r} is no country the holidays library {cls._library_version()} knows: "
                "an ISO 3166-1 alpha-2 code, such as DE or US"
            )
        return code

    @field_validator("subdivision")
    @classmethod
    def _known_subdivision(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or "country" not in info.data:  # a bad country is refused already
            return value
        country = info.data["country"]
        if country is None:
            raise ValueError("a subdivision needs a country")
        for spelling in dict.fromkeys((value.strip(), value.strip().upper())):
            if cls._known_place(country, spelling):
                return spelling
        import holidays

        known = ", ".join(holidays.country_holidays(country).subdivisions) or "none"
        raise ValueError(
            f"{value!r} is no subdivision of {country} the holidays library "
            f"{cls._library_version()} knows; it knows {known}"
        )

    @staticmethod
    def _known_place(country: str, subdivision: str | None) -> bool:
        import holidays

        try:
            holidays.country_holidays(country, subdiv=subdivision)  # no year yet: cheap
        except NotImplementedError:  # how the library refuses a country or subdivision
            return False
        return True

    @staticmethod
    def _library_version() -> str:
        from importlib.metadata import version

        return version("holidays")

    @staticmethod
    @functools.cache
    def _holidays_of(country: str, subdivision: str | None) -> frozenset[date]:
        """A known place's public holidays over ``HOLIDAY_YEARS``, once per process."""
        import holidays

        with warnings.catch_warnings():  # "available only from ... to ...": fewer is fine
            warnings.simplefilter("ignore")
            years = CalendarConfig.HOLIDAY_YEARS
            return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=years))

    def calendar(self) -> Calendar:
        if self.end <= self.start or not self.weekdays:
            raise ValueError("a calendar needs weekdays and an end after its start")
        days = frozenset(WEEKDAYS.index(day) for day in self.weekdays)
        listed = frozenset(self.holidays)
        if self.country is not None:
            listed |= self._holidays_of(self.country, self.subdivision)
        return Calendar(self.timezone, days, self.start, self.end, listed)


def _default_priorities() -> dict[str, TargetsConfig]:
    def seconds(us: int) -> str:
        return f"{us // US_PER_SECOND}s"

    return {
        priority: TargetsConfig(
            first_response=seconds(t.first_response_us), resolution=seconds(t.resolution_us)
        )
        for priority, t in DEFAULT_TARGETS.items()
    }


class SlaConfig(BaseModel):
    """SLA targets per priority (unnamed ones keep their default), optional per queue."""

    model_config = ConfigDict(extra="forbid")

    priorities: dict[str, TargetsConfig] = Field(default_factory=_default_priorities)
    queues: dict[str, dict[str, TargetsConfig]] = Field(default_factory=dict)
    at_risk_share: float = Field(default=0.25, gt=0, lt=1)
    calendar: CalendarConfig | None = None
    pause_statuses: list[Literal["pending", "on_hold"]] = ["pending", "on_hold"]

    def policy(self) -> SlaPolicy:
        return SlaPolicy(
            DEFAULT_TARGETS | {p: t.targets() for p, t in self.priorities.items()},
            {q: {p: t.targets() for p, t in by.items()} for q, by in self.queues.items()},
            self.at_risk_share,
            self.calendar.calendar() if self.calendar else None,
            frozenset(self.pause_statuses),
        )


class RulesConfig(BaseModel):
    """Thresholds of the indicator rules (docs/semantics.md, "Indicators and alert rules")."""

    model_config = ConfigDict(extra="forbid")

    reopen_rate: float = Field(default=0.15, ge=0, le=1)
    recontact_rate: float = Field(default=0.20, ge=0)
    ttfmr_rise: float = Field(default=0.5, gt=0)
    band_low_days: float = Field(default=0.5, ge=0)
    band_high_days: float = Field(default=3.0, gt=0)
    breach_wave: int = Field(default=10, ge=1)
    min_volume: int = Field(default=10, ge=0)
    sustain: Duration = "30m"  # a rule's condition holds this long: it fires
    clear: Duration = "1h"  # and has not held this long: it resolves
    warm_up: Duration = "7d"  # nothing decided this long after a scope's first boundary
    hold: Duration = "3h"  # a firing stands at least this long: never a flap
    band_for: Duration = "12h"  # the backlog stays outside its band this long: band rules fire

    def policy(self, capacity_window: str, timezone: str = "UTC") -> RulesPolicy:
        durations = {"sustain", "clear", "warm_up", "hold", "band_for"}
        return RulesPolicy(
            **self.model_dump(exclude=durations),
            capacity_window=capacity_window,
            timezone=timezone,
            sustain_seconds=parse_duration(self.sustain),
            clear_seconds=parse_duration(self.clear),
            warm_up_seconds=parse_duration(self.warm_up),
            hold_seconds=parse_duration(self.hold),
            band_for_seconds=parse_duration(self.band_for),
        )


class AlertsConfig(BaseModel):
    """The headline rule and the others' thresholds (``[alerts]``)."""

    model_config = ConfigDict(extra="forbid")

    inflow_above_outflow: CrossingConfig = CrossingConfig()
    rules: RulesConfig = RulesConfig()


class IndicatorsConfig(BaseModel):
    """The indicators' windows (``[indicators]``)."""

    model_config = ConfigDict(extra="forbid")

    window: Duration = "7d"  # reopen rate, response times, effort, and the drivers' baseline
    recent: Duration = "24h"  # the drivers' recent window


def _target(text: str) -> Target:
    """``10d`` (business days from tomorrow) or a date (``2026-03-14``, by its end)."""
    stripped = text.strip()
    if stripped[:-1].isdigit() and stripped[-1:].lower() == "d" and int(stripped[:-1]) > 0:
        return Target(business_days=int(stripped[:-1]))
    try:
        return Target(business_days=None, by=date.fromisoformat(stripped))
    except ValueError:
        raise ValueError(
            f"{text!r} is no target: business days like 10d, or a date like 2026-03-14"
        ) from None


def _valid_target(text: str) -> str:
    _target(text)
    return text


def _date_as_text(value: object) -> object:
    """A TOML date (``target = 2026-03-14``, unquoted) as the text a target is read from."""
    return value.isoformat() if isinstance(value, date) else value


TargetText = Annotated[str, BeforeValidator(_date_as_text), AfterValidator(_valid_target)]


class ForecastConfig(BaseModel):
    """The drain forecast and the effort to a target (docs/semantics.md, "Planning")."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    weeks: int = Field(default=6, ge=2, le=52)  # of history sampled
    paths: int = Field(default=ForecastPolicy().paths, ge=100, le=20_000)
    horizon: Duration = "90d"
    target: TargetText = "10d"
    targets: dict[str, TargetText] = Field(default_factory=dict)  # per queue name

    @field_validator("horizon")
    @classmethod
    def _whole_days(cls, value: str) -> str:
        if parse_duration(value) % 86400 or parse_duration(value) < 14 * 86400:
            raise ValueError("the horizon is whole days, at least 14d")
        return value

    @model_validator(mode="after")
    def _targets_within_the_horizon(self) -> ForecastConfig:
        days = parse_duration(self.horizon) // 86400
        for where, text in [("target", self.target)] + [
            (f"targets.{queue}", text) for queue, text in self.targets.items()
        ]:
            wanted = _target(text).business_days
            if wanted is not None and wanted > days:
                raise ValueError(f"{where} {text!r} lies beyond the horizon ({self.horizon})")
        return self

    def policy(self, rules: RulesPolicy, calendar: Calendar | None) -> ForecastPolicy | None:
        if not self.enabled:
            return None
        return ForecastPolicy(
            weeks=self.weeks,
            paths=self.paths,
            horizon_days=parse_duration(self.horizon) // 86400,
            band_high_days=rules.band_high_days,
            capacity_window=rules.capacity_window,
            capacity_window_us=parse_duration(rules.capacity_window) * US_PER_SECOND,
            target=_target(self.target),
            targets={queue: _target(text) for queue, text in self.targets.items()},
            calendar=calendar,
        )


_PULL = PullPolicy()


class PullConfig(BaseModel):
    """The pull list per queue (docs/semantics.md, "Planning"): weights of the score's parts,
    the value of each account tier, and when age counts in full."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    top: int = Field(default=_PULL.top, ge=1, le=1000)
    weights: dict[Part, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=lambda: dict(_PULL.weights)
    )
    tiers: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: dict(_PULL.tiers)
    )
    age_full: Duration = "24h"

    def policy(self) -> PullPolicy | None:
        if not self.enabled:
            return None
        return PullPolicy(
            top=self.top,
            weights=dict(_PULL.weights) | self.weights,
            tiers={tier.lower(): value for tier, value in self.tiers.items()},
            age_full_us=parse_duration(self.age_full) * US_PER_SECOND,
        )


KINDS = connectors()


class GatewaySource(BaseModel):
    """One helpdesk account posting to ``/webhooks/{name}`` (docs/connectors.md). The secret
    is masked in repr, dumps and validation errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    kind: str = Field(description=f"one of {', '.join(KINDS)}")
    account: str = Field(
        min_length=1, max_length=128, description="namespaces ids: kind:account:vendor-id"
    )
    secret: Secret | None = None
    secret_file: Path | None = None
    insecure: bool = False  # accept deliveries unsigned: only where nothing else can reach it
    tolerance: Duration = "5m"  # a signed timestamp older than this is a replay
    link: str | None = Field(
        default=None,
        description="a ticket's URL in the helpdesk: {id} is the vendor's ticket id, {path} and"
        " {number} its parts before and after the last ':' (GitHub: owner/repo and 42)",
    )
    mapping: dict[str, object] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _secret_from_file(cls, values: object) -> object:
        if isinstance(values, dict) and values.get("secret_file") is not None:
            if values.get("secret") is not None:
                raise ValueError("set secret or secret_file, not both")
            values = {**values, "secret": _read_secret(Path(values["secret_file"]), "secret")}
        return values

    @model_validator(mode="after")
    def _known_kind(self) -> GatewaySource:
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} is none of {list(KINDS)}")
        KINDS[self.kind].options_model.model_validate(self.mapping)
        return self

    @field_validator("link")
    @classmethod
    def _link_fields(cls, link: str | None) -> str | None:
        if link is not None:
            try:
                link.format(id="1", path="o/r", number="1")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(
                    f"link may use {{id}}, {{path}} and {{number}} only: {exc}"
                ) from None
        return link

    def link_of(self, ticket_id: str) -> str | None:
        """The helpdesk's URL of one of this source's tickets (``kind:account:vendor-id``)."""
        prefix = f"{self.kind}:{self.account}:"
        if self.link is None or not ticket_id.startswith(prefix):
            return None
        vendor_id = ticket_id.removeprefix(prefix)
        path, _, number = vendor_id.rpartition(":")
        return self.link.format(id=vendor_id, path=path, number=number)

    def connector(self) -> Connector:
        kind = KINDS[self.kind]
        secret = None if self.secret is None else self.secret.get_secret_value().encode()
        source = Source(self.name, self.kind, self.account, secret, parse_duration(self.tolerance))
        return kind(source, kind.options_model.model_validate(self.mapping))


class GatewayConfig(BaseModel):
    """``flowgauge gateway``: where it listens and the sources it takes deliveries from."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    ack_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    sources: list[GatewaySource] = Field(default_factory=list)

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[GatewaySource]) -> list[GatewaySource]:
        names = [source.name for source in sources]
        if len(set(names)) != len(names):
            raise ValueError("two gateway sources have the same name")
        return sources


class FlowgaugeConfig(BaseSettings):
    """Every setting, its default, and where it comes from (docs/configuration.md)."""

    model_config = SettingsConfigDict(
        env_prefix="FLOWGAUGE_", extra="forbid", hide_input_in_errors=True
    )

    broker: str | None = None
    security_protocol: SecurityProtocol = "PLAINTEXT"
    ssl_ca_file: Path | None = None  # default: the system's trusted authorities
    ssl_cert_file: Path | None = None  # mutual TLS: this client's certificate and key
    ssl_key_file: Path | None = None
    sasl_mechanism: SaslMechanism = "PLAIN"
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    sasl_password_file: Path | None = None
    web_port: int = Field(6066, ge=0, le=65535)
    web_host: str = "127.0.0.1"
    web_token: Secret | None = None  # bearer token every protected page asks for
    web_token_file: Path | None = None
    web_username: str | None = None  # basic auth, with web_password
    web_password: Secret | None = None
    web_password_file: Path | None = None
    web_auth_metrics: bool = False  # /metrics asks for them too
    ui_host: str = "127.0.0.1"  # flowgauge web
    ui_port: int = Field(8080, ge=0, le=65535)
    ui_timezone: Zone | None = None  # default: [sla.calendar] timezone, else UTC
    ui_refresh_seconds: float = Field(5.0, gt=0)
    ui_stale_after: Duration | None = None  # default: three steps
    ui_fine: Duration = "7d"  # every boundary kept this long, then each hour's last
    ui_hourly: Duration = "90d"  # then each day's last
    ui_retention: Duration = "400d"  # then none
    partitions: int = Field(4, ge=1, le=1024)
    replication: int | None = Field(None, ge=1)  # default: min(3, brokers in the cluster)
    min_insync_replicas: int | None = Field(None, ge=1)  # default: max(1, replication - 1)
    derived_retention: Duration = "35d"
    create_topics: bool = True
    step: Duration = "5m"
    grace: Duration = "10m"
    clock_tolerance: Duration = "1h"  # how far ahead of the wall clock an event may be dated
    windows: Annotated[tuple[str, ...], NoDecode] = ("1h", "24h", "7d")
    idle_timeout: Duration = "1m"
    live_horizon: Duration = "1h"
    label_cap: int = Field(50, ge=1)
    scope_cap: int = Field(200, ge=1)
    batch_size: int = Field(2000, ge=1)
    batch_seconds: float = Field(0.2, gt=0)
    snapshots_per_batch: int = Field(20000, ge=1)
    data_dir: Path = Path(".flowgauge")
    app_id: str = "flowgauge"
    rebalance_timeout: float = Field(4.0, gt=0)
    stall_restart: StallRestart = "5m"  # docs/operations.md, "Known limits"
    log_level: str = "warning"
    dashboard_url: Annotated[str, AfterValidator(_http_url)] | None = None
    alerts: AlertsConfig = AlertsConfig()
    sla: SlaConfig = SlaConfig()
    indicators: IndicatorsConfig = IndicatorsConfig()
    forecast: ForecastConfig = ForecastConfig()
    pull: PullConfig = PullConfig()
    chat: list[ChatDestination] = Field(default_factory=list)
    gateway: GatewayConfig = GatewayConfig()
    silences: list[Silence] = Field(default_factory=list)

    @field_validator("windows", mode="before")
    @classmethod
    def _split_windows(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            return tuple(_duration(str(part)) for part in value)
        return value

    @field_validator("broker")
    @classmethod
    def _kafka_url(cls, value: str | None) -> str | None:
        if value is not None and not all(
            url.strip().startswith("kafka://") for url in value.split(",")
        ):
            raise ValueError("broker must look like kafka://host:port[,kafka://host:port...]")
        return value

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, values: object) -> object:
        if not isinstance(values, dict):
            return values
        for name in SECRETS_FROM_FILES:
            path = values.get(f"{name}_file")
            if path is None:
                continue
            if values.get(name) is not None:
                raise ValueError(f"set {name} or {name}_file, not both")
            values = {**values, name: _read_secret(Path(path), name)}
        return values

    @model_validator(mode="after")
    def _security(self) -> FlowgaugeConfig:
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and (self.sasl_username is None or self.sasl_password is None):
            raise ValueError(f"{self.security_protocol} needs sasl_username and sasl_password")
        tls = self.security_protocol in ("SSL", "SASL_SSL")
        files = (self.ssl_ca_file, self.ssl_cert_file, self.ssl_key_file)
        if not tls and any(files):
            raise ValueError("ssl_*_file settings need security_protocol SSL or SASL_SSL")
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            raise ValueError("mutual TLS needs both ssl_cert_file and ssl_key_file")
        if (self.web_username is None) != (self.web_password is None):
            raise ValueError("basic auth needs both web_username and web_password")
        if self.web_auth_metrics and self.web_token is None and self.web_password is None:
            raise ValueError("web_auth_metrics needs web_token or web_username and web_password")
        thinning = [parse_duration(d) for d in (self.ui_fine, self.ui_hourly, self.ui_retention)]
        if thinning != sorted(set(thinning)):
            raise ValueError("the web view keeps ui_fine < ui_hourly < ui_retention")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = os.environ.get("FLOWGAUGE_CONFIG")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path:
            if not Path(path).is_file():
                raise SettingsError(f"FLOWGAUGE_CONFIG points at no file: {path}")
            try:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise SettingsError(f"FLOWGAUGE_CONFIG {path} is no TOML file: {exc}") from None
            except OSError as exc:  # a mounted file of mode 0600 owned by another user
                raise SettingsError(
                    f"FLOWGAUGE_CONFIG {path} cannot be read: {exc.strerror}"
                ) from None
        return tuple(sources)

    def ticket_link(self, ticket_id: str) -> str | None:
        """A ticket's URL in its helpdesk, where a gateway source names the ticket's kind and
        account and has a ``link``."""
        for source in self.gateway.sources:
            link = source.link_of(ticket_id)
            if link is not None:
                return link
        return None

    @property
    def step_seconds(self) -> int:
        return parse_duration(self.step)

    @property
    def stall_restart_seconds(self) -> int | None:
        return None if self.stall_restart == "off" else parse_duration(self.stall_restart)

    @property
    def grace_us(self) -> int:
        return parse_duration(self.grace) * US_PER_SECOND

    def wall_clock(self, now_seconds: float) -> WallClock:
        tolerance = parse_duration(self.clock_tolerance) * US_PER_SECOND
        return WallClock(int(now_seconds * US_PER_SECOND), tolerance)

    @classmethod
    def load(cls, **given: object) -> FlowgaugeConfig:
        """The settings of the environment and the TOML file, ``given`` over both; refused
        with a ``SettingsError``."""
        try:
            return cls(**given)  # type: ignore[arg-type]
        except ValidationError as exc:
            raise SettingsError.of(exc) from None

    def core(self, track_aging: bool = True) -> Settings:
        try:
            windows = Windows.of(self.step_seconds, {w: parse_duration(w) for w in self.windows})
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        policy = self.alerts.inflow_above_outflow.policy()
        indicator_seconds = (
            parse_duration(self.indicators.window),
            parse_duration(self.indicators.recent),
        )
        if any(seconds % self.step_seconds for seconds in indicator_seconds):
            raise SettingsError("indicator windows must be multiples of the step")
        if indicator_seconds[1] >= indicator_seconds[0]:
            raise SettingsError(
                "the recent indicator window must be shorter than the baseline: drivers"
                " compare it with the baseline before it"
            )
        capacity = (
            "7d" if "7d" in windows.steps else max(windows.steps, key=windows.steps.__getitem__)
        )
        sla = self.sla.policy()
        rules = self.alerts.rules.policy(capacity, sla.calendar.timezone if sla.calendar else "UTC")
        return Settings(
            windows, policy, track_aging, sla, rules, indicator_seconds, self.scope_cap,
            self.forecast.policy(rules, sla.calendar), self.pull.policy(),
        )  # fmt: skip
