"""Grafana dashboards: in step with the generator, and reading only metrics the workers export."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from streams import dashboards
from streams.cli import main
from streams.metrics import PipelineMetrics
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
SCOPED_BOARDS = ("flowgauge-overview", "flowgauge-aging")


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
    assert sorted(uids) == ["flowgauge-aging", "flowgauge-overview", "flowgauge-pipeline"]
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
    path = tmp_path / "test.yml"
    path.write_text(json.dumps(test))
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
