"""Configuration: environment variables over one optional TOML file, validated once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from streams.alerts import CrossingPolicy
from streams.flow import Windows
from streams.scope import Settings
from streams.timeline import US_PER_SECOND, parse_duration


def _duration(text: str) -> str:
    parse_duration(text)
    return text.strip().lower()


Duration = Annotated[str, AfterValidator(_duration)]


class CrossingConfig(BaseModel):
    """The ``inflow_above_outflow`` rule: see README "Alerts"."""

    window: str = "24h"
    min_volume: int = Field(default=10, ge=0)
    sustain: int = Field(default=3, ge=1)
    clear: int = Field(default=3, ge=1)


class AlertsConfig(BaseModel):
    inflow_above_outflow: CrossingConfig = CrossingConfig()


class FlowgaugeConfig(BaseSettings):
    """Every setting, its default, and where it comes from (README "Configuration")."""

    model_config = SettingsConfigDict(env_prefix="FLOWGAUGE_", extra="forbid")

    broker: str | None = None
    web_port: int = Field(6066, ge=0, le=65535)
    web_host: str = "127.0.0.1"
    partitions: int = Field(4, ge=1, le=1024)
    step: Duration = "5m"
    grace: Duration = "10m"
    windows: Annotated[tuple[str, ...], NoDecode] = ("1h", "24h", "7d")
    idle_timeout: Duration = "1m"
    live_horizon: Duration = "1h"
    label_cap: int = Field(50, ge=1)
    batch_size: int = Field(2000, ge=1)
    batch_seconds: float = Field(0.2, gt=0)
    snapshots_per_batch: int = Field(2000, ge=1)
    data_dir: Path = Path(".flowgauge")
    app_id: str = "flowgauge"
    rebalance_timeout: float = Field(4.0, gt=0)
    log_level: str = "warning"
    dashboard_url: str | None = None
    alerts: AlertsConfig = AlertsConfig()

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
        if value is not None and not value.startswith("kafka://"):
            raise ValueError("broker must look like kafka://host:port")
        return value

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
                raise FileNotFoundError(f"FLOWGAUGE_CONFIG points at no file: {path}")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def step_seconds(self) -> int:
        return parse_duration(self.step)

    @property
    def grace_us(self) -> int:
        return parse_duration(self.grace) * US_PER_SECOND

    def core(self, track_aging: bool = True) -> Settings:
        windows = Windows.of(self.step_seconds, {w: parse_duration(w) for w in self.windows})
        crossing = self.alerts.inflow_above_outflow
        if crossing.window not in windows.steps:
            raise ValueError(f"alert window {crossing.window} is not one of {list(windows.steps)}")
        policy = CrossingPolicy(
            crossing.window, crossing.min_volume, crossing.sustain, crossing.clear
        )
        return Settings(windows, policy, track_aging)
