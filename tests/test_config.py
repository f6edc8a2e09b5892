"""Configuration: environment over the optional TOML file, validated up front."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.config import FlowgaugeConfig


def test_toml_file_sets_rules_and_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "flowgauge.toml"
    toml.write_text('step = "15m"\n[alerts.inflow_above_outflow]\nmin_volume = 25\nsustain = 4\n')
    monkeypatch.setenv("FLOWGAUGE_CONFIG", str(toml))
    monkeypatch.setenv("FLOWGAUGE_STEP", "1h")
    config = FlowgaugeConfig()
    assert config.step == "1h"
    policy = config.core().crossing
    assert (policy.min_volume, policy.sustain, policy.clear) == (25, 4, 3)


def test_defaults_match_the_readme(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FLOWGAUGE_CONFIG", "FLOWGAUGE_STEP", "FLOWGAUGE_WINDOWS", "FLOWGAUGE_BROKER"):
        monkeypatch.delenv(name, raising=False)
    config = FlowgaugeConfig()
    assert (config.web_port, config.partitions, config.step, config.grace) == (6066, 4, "5m", "10m")
    assert config.windows == ("1h", "24h", "7d")
    assert config.stall_restart_seconds == 300


@pytest.mark.parametrize(
    ("table", "misspelled"),
    [
        ("[alerts]", "rule = {}"),
        ("[alerts.rules]", "reopen_rat = 0.3"),
        ("[indicators]", 'windw = "14d"'),
        ("[sla]", "at_risk_shar = 0.5"),
        ("[sla.priorities.P1]", 'first_response = "1h"\nresolution = "1d"\nresolutoin = "2d"'),
        ("[sla.calendar]", 'weekday = ["mon"]'),
    ],
)
def test_a_misspelled_key_is_refused_not_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str, misspelled: str
) -> None:
    """A threshold a team believes it set, silently left at its default, is worse than no start."""
    toml = tmp_path / "flowgauge.toml"
    toml.write_text(f"{table}\n{misspelled}\n")
    monkeypatch.setenv("FLOWGAUGE_CONFIG", str(toml))
    key = misspelled.split("\n")[-1].split(" = ")[0]
    with pytest.raises(ValidationError, match=f"{key}\n +Extra inputs are not permitted"):
        FlowgaugeConfig()


@pytest.mark.parametrize(("value", "seconds"), [("OFF", None), (" 90s", 90), ("10s", 10)])
def test_the_stall_restart_is_off_or_a_duration_of_at_least_10s(
    monkeypatch: pytest.MonkeyPatch, value: str, seconds: int | None
) -> None:
    monkeypatch.setenv("FLOWGAUGE_STALL_RESTART", value)
    assert FlowgaugeConfig().stall_restart_seconds == seconds


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FLOWGAUGE_STEP", "five minutes"),
        ("FLOWGAUGE_BROKER", "localhost:9092"),
        ("FLOWGAUGE_WEB_PORT", "70000"),
        ("FLOWGAUGE_STALL_RESTART", "5s"),
        ("FLOWGAUGE_STALL_RESTART", "never"),
        ("FLOWGAUGE_DASHBOARD_URL", "grafana.internal:3000/d/flowgauge"),  # chat refuses it
        ("FLOWGAUGE_DASHBOARD_URL", "https:///d/flowgauge"),
    ],
)
def test_bad_values_are_rejected(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        FlowgaugeConfig()


def test_a_window_that_is_not_a_multiple_of_the_step_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOWGAUGE_STEP", "7m")
    with pytest.raises(ValueError, match="multiple of the step"):
        FlowgaugeConfig().core()


def test_the_web_view_thins_its_history_in_order() -> None:
    FlowgaugeConfig(ui_fine="2d", ui_hourly="30d", ui_retention="90d")
    for fine, hourly, retention in (
        ("7d", "7d", "400d"),
        ("90d", "7d", "400d"),
        ("7d", "90d", "30d"),
    ):
        with pytest.raises(ValidationError, match="ui_fine < ui_hourly < ui_retention"):
            FlowgaugeConfig(ui_fine=fine, ui_hourly=hourly, ui_retention=retention)


@pytest.mark.parametrize("recent", ["7d", "8d"])
def test_the_drivers_recent_window_must_leave_part_of_the_baseline_before_it(
    recent: str,
) -> None:
    """A tag's usual share is over the baseline window before the recent one: a recent
    window as long as the baseline leaves nothing to compare with."""
    config = FlowgaugeConfig.model_validate({"indicators": {"window": "7d", "recent": recent}})
    with pytest.raises(ValueError, match="recent indicator window must be shorter"):
        config.core()
    FlowgaugeConfig.model_validate({"indicators": {"window": "7d", "recent": "6d"}}).core()
