"""Grafana dashboards: in step with the generator, and reading only metrics the workers export."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from streams.commands.cli import main
from streams.outputs import dashboards
from streams.outputs.metrics import PipelineMetrics
from tests.conftest import ROOT, need_program

GRAFANA = ROOT / "grafana"
COMMITTED = GRAFANA / "dashboards"
# Sample names per family type, as the Prometheus text format spells them.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}
SCOPED_BOARDS = ("flowgauge-overview", "flowgauge-aging", "flowgauge-indicators")


def exported_metric_names() -> set[str]:
    registry = PipelineMetrics(label_cap=50).registry
    return {
        family.name + suffix for family in registry.collect() for suffix in SUFFIXES[family.type]
    }


def boards() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(COMMITTED.glob("*.json"))]


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in board["panels"] if panel["type"] != "row"]


def test_committed_dashboards_are_exactly_what_the_generator_writes(tmp_path: Path) -> None:
    assert main(["dashboards", "--output", str(tmp_path)]) == 0
    generated = {path.name: path.read_text() for path in tmp_path.glob("*.json")}
    committed = {path.name: path.read_text() for path in COMMITTED.glob("*.json")}
    assert committed == generated, "grafana/dashboards drifted: run `flowgauge dashboards`"


def test_the_required_dashboards_exist_with_unique_uids() -> None:
    uids = [board["uid"] for board in boards()]
    assert sorted(uids) == [
        "flowgauge-aging",
        "flowgauge-indicators",
        "flowgauge-overview",
        "flowgauge-pipeline",
    ]
    for board in boards():
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), board["uid"]


def test_every_query_reads_only_exported_metrics() -> None:
    exported = exported_metric_names()
    assert "flowgauge_events_processed_total" in exported
    assert "flowgauge_open_tickets" in exported
    for board, panel, expr in dashboards.panel_expressions():
        used = set(re.findall(r"\bflowgauge_\w+", expr))
        assert used, f"{board} / {panel}: no flowgauge metric in {expr}"
        assert used <= exported, f"{board} / {panel}: not exported: {used - exported}"


def test_every_panel_has_a_unit_a_datasource_and_queries() -> None:
    for board in boards():
        for panel in panels(board):
            where = f"{board['title']} / {panel['title']}"
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"
            assert panel["datasource"]["uid"] == "${datasource}", where
            assert panel["targets"], f"{where}: no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", where


def test_rows_group_every_panel() -> None:
    for board in boards():
        assert board["panels"][0]["type"] == "row", board["uid"]


def test_every_variable_a_query_uses_is_defined() -> None:
    for board in boards():
        defined = {variable["name"] for variable in board["templating"]["list"]}
        assert "datasource" in defined
        if board["uid"] in SCOPED_BOARDS:
            assert set(dashboards.SCOPE_VARIABLES) <= defined
        for panel in panels(board):
            for target in panel["targets"]:
                used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
                assert used <= defined, f"{board['title']} / {panel['title']}: {used - defined}"


def test_scope_variables_mean_the_whole_backlog_when_all_is_selected() -> None:
    for board in boards():
        for variable in board["templating"]["list"]:
            if variable["name"] in dashboards.SCOPE_VARIABLES:
                assert variable["includeAll"]
                assert variable["allValue"] == dashboards.ALL
    expr = dashboards.scoped("flowgauge_open_tickets")
    assert dashboards.substitute(expr) == (
        'flowgauge_open_tickets{queue=~"^$", priority=~"^$", channel=~"^$"}'
    )
    one_queue = dashboards.substitute(expr, {**dashboards.DEFAULTS, "queue": "billing"})
    assert 'queue=~"billing"' in one_queue


def test_every_substituted_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = need_program("promtool")
    rules = [
        {"record": f"flowgauge_dashboard_query_{index}", "expr": dashboards.substitute(expr)}
        for index, (_, _, expr) in enumerate(dashboards.panel_expressions())
    ]
    assert not [rule for rule in rules if re.search(r"\$\w", rule["expr"])]
    path = tmp_path / "rules.yml"
    # JSON is YAML, so promtool reads this without a YAML writer.
    path.write_text(json.dumps({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_provisioning_names_the_datasource_and_the_dashboards_folder() -> None:
    yaml = pytest.importorskip("yaml")
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    assert [source["type"] for source in datasources["datasources"]] == ["prometheus"]
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/flowgauge.yml").read_text())
    assert [provider["type"] for provider in providers["providers"]] == ["file"]


def _panel_expr(title: str) -> str:
    (expr,) = [expr for _, panel, expr in dashboards.panel_expressions() if panel == title]
    return expr


def test_scope_selection_sums_workers_and_never_double_counts(tmp_path: Path) -> None:
    promtool = need_program("promtool")
    open_tickets = _panel_expr("Open tickets")
    both_queues = {**dashboards.DEFAULTS, "queue": "(billing|tech)"}
    cases = [
        (dashboards.substitute(open_tickets), 100),
        (dashboards.substitute(open_tickets, both_queues), 100),
        (dashboards.substitute(_panel_expr("Backlog in days of capacity")), 5),
    ]
    scope = {"": 'queue="", priority="", channel=""'}
    scope |= {q: f'queue="{q}", priority="", channel=""' for q in ("billing", "tech")}
    series = [
        (f'flowgauge_open_tickets{{{scope[""]}, instance="a"}}', 100),
        (f'flowgauge_open_tickets{{{scope["billing"]}, instance="a"}}', 60),
        (f'flowgauge_open_tickets{{{scope["tech"]}, instance="b"}}', 40),
        (f'flowgauge_outflow_tickets{{window="7d", {scope[""]}, instance="a"}}', 140),
        (f'flowgauge_outflow_tickets{{window="1h", {scope[""]}, instance="a"}}', 1),
    ]
    test = {
        "rule_files": [],
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": name, "values": f"{v}x5"} for name, v in series],
                "promql_expr_test": [
                    {"expr": expr, "eval_time": "2m", "exp_samples": [{"labels": "{}", "value": v}]}
                    for expr, v in cases
                ],
            }
        ],
    }
    assert_promtool_passes(promtool, tmp_path, test)


def _board(uid: str) -> dict[str, Any]:
    (board,) = [board for board in boards() if board["uid"] == uid]
    return board


def _steps(panel: dict[str, Any]) -> list[float | None]:
    return [step["value"] for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]


def test_leading_indicators_board_has_its_thresholds_and_every_indicator() -> None:
    board = _board("flowgauge-indicators")
    by_title = {panel["title"]: panel for panel in panels(board)}
    assert _steps(by_title["Reopen rate"]) == [None, 0.15]
    assert by_title["Reopen rate"]["fieldConfig"]["defaults"]["unit"] == "percentunit"
    days = by_title["Backlog in days of capacity, per scope"]
    assert _steps(days) == [None, 0.5, 3]
    assert "/ 86400" in days["targets"][0]["expr"]
    quantiles = [target["expr"] for target in by_title["First response p50 / p90"]["targets"]]
    assert [re.findall(r'quantile="([\d.]+)"', expr) for expr in quantiles] == [["0.5"], ["0.9"]]
    (rules,) = by_title["Indicator rules"]["targets"]
    assert "flowgauge_alert_firing" in rules["expr"]
    assert "by (rule)" in rules["expr"]
    recontact, deflection = by_title["Recontact rate"], by_title["Real deflection"]
    assert "flowgauge_recontact_rate_ratio" in recontact["targets"][0]["expr"]
    assert "flowgauge_deflection_ratio" in deflection["targets"][0]["expr"]


def test_indicator_panels_show_each_scope_and_never_add_ratios(tmp_path: Path) -> None:
    """Two queues selected: one line each; a scope seen on two workers (moved) counts once."""
    promtool = need_program("promtool")
    reopen = _panel_expr("Reopen rate")
    both_queues = {**dashboards.DEFAULTS, "queue": "(billing|tech)"}
    scope = {q: f'queue="{q}", priority="", channel=""' for q in ("", "billing", "tech")}
    series = [
        (f'flowgauge_reopen_rate_ratio{{{scope[""]}, instance="a"}}', 0.1),
        (f'flowgauge_reopen_rate_ratio{{{scope["billing"]}, instance="a"}}', 0.2),
        (f'flowgauge_reopen_rate_ratio{{{scope["billing"]}, instance="b"}}', 0.2),
        (f'flowgauge_reopen_rate_ratio{{{scope["tech"]}, instance="b"}}', 0.05),
    ]
    # Empty labels are no labels in a result.
    cases = [
        (dashboards.substitute(reopen), [("", 0.1)]),
        (
            dashboards.substitute(reopen, both_queues),
            [('queue="billing"', 0.2), ('queue="tech"', 0.05)],
        ),
    ]
    test = {
        "rule_files": [],
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": name, "values": f"{v}x5"} for name, v in series],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "2m",
                        "exp_samples": [{"labels": f"{{{ls}}}", "value": v} for ls, v in samples],
                    }
                    for expr, samples in cases
                ],
            }
        ],
    }
    assert_promtool_passes(promtool, tmp_path, test)


def assert_promtool_passes(promtool: str, tmp_path: Path, test: dict[str, Any]) -> None:
    """Run one ``promtool test rules`` file built from ``test``; it must pass."""
    path = tmp_path / "test.yml"
    path.write_text(json.dumps(test))
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
