"""The deployment files: Prometheus config and rules (real promtool), Alertmanager (real amtool),
and docker-compose.yml checked against the code it runs (topics, config fields, paths)."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.config import FlowgaugeConfig
from streams.core.timeline import parse_duration
from streams.core.topics import PUBLIC_TOPICS, public_topic_configs
from streams.kafka import Kafka
from tests.conftest import ROOT, need_program

DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"
COMPOSE = ROOT / "docker-compose.yml"
BROKERS = ("kafka-1", "kafka-2", "kafka-3")
SERVICES = {
    *BROKERS,
    "kafka-init",
    "worker",
    "simulator",
    "gateway",
    "web",
    "prometheus",
    "alertmanager",
    "grafana",
}
# ${NAME}, ${NAME:-default} and ${NAME-default}: compose's interpolation.
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")
ALERTS = {
    "FlowgaugeEventsAheadOfClock",
    "FlowgaugeGatewayBrokerUnavailable",
    "FlowgaugeGatewayRefusesEverything",
    "FlowgaugeInflowAboveOutflow",
    "FlowgaugeIntakeStalled",
    "FlowgaugePipelineStale",
    "FlowgaugeSlaBreachWave",
    "FlowgaugeSnapshotsBehind",
    "FlowgaugeWorkerDown",
    "FlowgaugeWorkersAbsent",
}


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result


def rule_files() -> list[Path]:
    return sorted((PROMETHEUS / "rules").glob("*.yml"))


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def interpolate(value: str) -> str:
    """A compose value with every variable at its default, as an unconfigured `up` sees it."""
    return INTERPOLATION.sub(lambda match: match.group(2) or "", value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = load(COMPOSE)
    return document


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: interpolate(str(value)) for name, value in env.items()}


# --- Prometheus and Alertmanager, with the real tools --------------------------------------


def test_promtool_accepts_the_config_and_finds_every_rule_file() -> None:
    promtool = need_program("promtool")
    result = run(promtool, "check", "config", PROMETHEUS / "prometheus.yml")
    assert f"SUCCESS: {len(rule_files())} rule files found" in result.stdout
    listed = load(PROMETHEUS / "prometheus.yml")["rule_files"]
    assert sorted(PROMETHEUS / name for name in listed) == rule_files()


def test_promtool_checks_the_rules() -> None:
    promtool = need_program("promtool")
    run(promtool, "check", "rules", *rule_files())
    alerts = {
        rule["alert"]
        for path in rule_files()
        for group in load(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert alerts == ALERTS


def test_promtool_rule_unit_tests_pass() -> None:
    promtool = need_program("promtool")
    tests = sorted((PROMETHEUS / "tests").glob("*.yml"))
    assert tests
    result = run(promtool, "test", "rules", *tests)
    assert "SUCCESS" in result.stdout
    tested = {
        case["alertname"]
        for path in tests
        for group in load(path)["tests"]
        for case in group.get("alert_rule_test", [])
    }
    assert tested == ALERTS, "every alert has a unit test"


def test_promtool_unit_tests_fail_when_a_rule_is_broken(tmp_path: Path) -> None:
    """The unit tests can fail: the inflow rule reading another rule's state must break them."""
    promtool = need_program("promtool")
    rules = (PROMETHEUS / "rules" / "alerts.yml").read_text()
    broken = rules.replace('rule="inflow_above_outflow"', 'rule="reopen_rate_high"', 1)
    assert broken != rules
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "rules" / "alerts.yml").write_text(broken)
    for path in [*(PROMETHEUS / "rules").glob("recording.yml"), *PROMETHEUS.glob("tests/*.yml")]:
        (tmp_path / path.relative_to(PROMETHEUS)).write_text(path.read_text())
    result = subprocess.run(
        [promtool, "test", "rules", *sorted((tmp_path / "tests").glob("*.yml"))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "FlowgaugeInflowAboveOutflow" in result.stdout + result.stderr


def test_prometheus_scrapes_the_compose_workers_and_sends_to_its_alertmanager(
    compose: dict[str, Any],
) -> None:
    config = load(PROMETHEUS / "prometheus.yml")
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "flowgauge"]
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["worker"]
    assert sd["type"] == "A"
    assert str(sd["port"]) == environment(compose["services"]["worker"])["FLOWGAUGE_WEB_PORT"]
    (manager,) = config["alerting"]["alertmanagers"]
    assert manager["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_amtool_accepts_the_alertmanager_config() -> None:
    amtool = need_program("amtool")
    result = run(amtool, "check-config", ALERTMANAGER)
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (
            ["alertname=FlowgaugeInflowAboveOutflow", "scope=queue:billing", "queue=billing"],
            "slack",
        ),
        (["alertname=FlowgaugeWorkerDown", "severity=critical"], "slack"),
    ],
)
def test_amtool_routes_every_alert_to_slack(labels: list[str], receiver: str) -> None:
    amtool = need_program("amtool")
    result = run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert result.stdout.strip() == receiver


def test_alertmanager_groups_by_rule_and_scope_and_sends_resolved(
    compose: dict[str, Any],
) -> None:
    config = load(ALERTMANAGER)
    assert config["route"]["group_by"] == ["alertname", "scope", "queue"]
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    (slack,) = receivers[config["route"]["receiver"]]["slack_configs"]
    assert slack["send_resolved"] is True
    assert "api_url" not in slack, "the webhook URL is a secret: read it from a file"
    secret = compose["secrets"]["slack_webhook_url"]
    assert slack["api_url_file"] == "/run/secrets/slack_webhook_url"
    assert "slack_webhook_url" in compose["services"]["alertmanager"]["secrets"]
    placeholder = ROOT / interpolate(secret["file"])
    assert placeholder.read_text().startswith("https://hooks.slack.com/services/")


# --- docker-compose.yml --------------------------------------------------------------------


def test_compose_has_the_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    assert services["simulator"]["profiles"] == ["simulator"]
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["worker"]["command"] == ["worker"]
    assert services["simulator"]["command"][0] == "simulate"
    assert services["worker"]["build"] == "."
    assert (ROOT / "Dockerfile").is_file()
    for name, service in services.items():
        if name not in {"kafka-init", "simulator"}:
            assert service["restart"] == "unless-stopped", name
            if name != "worker":  # the worker's image has a HEALTHCHECK too
                assert service["healthcheck"]["test"], name
    assert services["kafka-init"]["restart"] == "no"
    assert services["worker"]["healthcheck"]["test"]


def test_simulator_arguments_are_ones_the_cli_accepts(compose: dict[str, Any]) -> None:
    from streams.commands.cli import _parser

    command = [interpolate(str(part)) for part in compose["services"]["simulator"]["command"]]
    args = _parser().parse_args(command)
    assert args.days == 28
    assert args.speed == 3600
    assert not args.flat_out


def test_every_image_is_pinned_to_a_version(compose: dict[str, Any]) -> None:
    images = {name: service["image"] for name, service in compose["services"].items()}
    assert all(images[name].startswith("apache/kafka:") for name in BROKERS)
    for name, image in images.items():
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image} has no tag"
        assert "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
        assert re.fullmatch(r"v?\d+(\.\d+)+(-[\w.]+)?", tag), f"{name}: {image} is no version"
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    assert bases
    for base in bases:
        assert re.search(r":\d+\.\d+\.\d+", base), f"Dockerfile base {base} is not pinned"


def test_published_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    published = {
        name: sorted(str(port) for port in service.get("ports", []))
        for name, service in services.items()
    }
    assert [published[name] for name in BROKERS] == [["9094:9094"], ["9095:9094"], ["9096:9094"]]
    assert published["prometheus"] == ["9090:9090"]
    assert published["alertmanager"] == ["9093:9093"]
    assert published["grafana"] == ["3000:3000"]
    assert published["worker"] == [], "a fixed host port would stop --scale worker=N"
    assert published["web"] == ["8080:8080"]
    assert [str(port) for port in services["worker"]["expose"]] == [
        environment(services["worker"])["FLOWGAUGE_WEB_PORT"]
    ]
    for number, name in enumerate(BROKERS, 1):
        kafka = environment(services[name])
        assert f"EXTERNAL://localhost:{9093 + number}" in kafka["KAFKA_ADVERTISED_LISTENERS"]
        assert f"PLAINTEXT://{name}:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"]
        assert kafka["KAFKA_NODE_ID"] == str(number)


def test_kafka_is_a_three_node_kraft_cluster_that_survives_losing_one(
    compose: dict[str, Any],
) -> None:
    nodes = [environment(compose["services"][name]) for name in BROKERS]
    voters = {f"{number}@{name}:9093" for number, name in enumerate(BROKERS, 1)}
    for node in nodes:
        assert node["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert set(node["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
        assert len(base64.urlsafe_b64decode(node["CLUSTER_ID"] + "==")) == 16
        assert node["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert node["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert len({node["CLUSTER_ID"] for node in nodes}) == 1
    servers = environment(compose["services"]["worker"])["FLOWGAUGE_BROKER"]
    assert servers.split(",") == [f"kafka://{name}:9092" for name in BROKERS]


def test_every_bind_mounted_host_path_exists(compose: dict[str, Any]) -> None:
    mounts = []
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if source.startswith((".", "/")):
                mounts.append(source)
    mounts += [interpolate(secret["file"]) for secret in compose.get("secrets", {}).values()]
    expected = {
        "./deploy/prometheus",
        "./deploy/alertmanager",
        "./grafana/provisioning",
        "./grafana/dashboards",
    }
    assert expected <= set(mounts)
    for source in mounts:
        assert (ROOT / source).resolve().is_relative_to(ROOT), source
        assert (ROOT / source).exists(), f"{source} is mounted but not in the repository"


def test_grafana_mounts_match_its_provisioning(compose: dict[str, Any]) -> None:
    targets = dict(volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"])
    assert targets["./grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = ROOT / "grafana" / "provisioning" / "dashboards"
    paths = {
        provider["options"]["path"]
        for path in providers.glob("*.y*ml")
        for provider in load(path).get("providers", [])
    }
    assert paths, "no dashboard provider in grafana/provisioning/dashboards"
    assert paths <= {targets["./grafana/dashboards"]}


def test_topic_creation_matches_the_topics_the_workers_use(compose: dict[str, Any]) -> None:
    init = compose["services"]["kafka-init"]
    script = "\n".join(init["command"])
    created = re.findall(r"^\s*create ([\w.-]+)", script, re.MULTILINE)
    assert sorted(created) == sorted(PUBLIC_TOPICS)
    retention = parse_duration(FlowgaugeConfig.model_fields["derived_retention"].default)
    # What a worker creates on three brokers: replication min(3, 3), min.insync 3 - 1.
    wanted = public_topic_configs(2, retention * 1000)
    shared = dict(re.findall(r"--config ([\w.]+)=(\S+)", script.split("}")[0]))
    assert re.search(r"--replication-factor 3\b", script.split("}")[0])
    for name, options in re.findall(r"^\s*create ([\w.-]+)(.*)$", script, re.MULTILINE):
        configs = dict(re.findall(r"--config ([\w.]+)=(\S+)", options))
        assert {**shared, **configs} == wanted[name]
    partitions = environment(init)["PARTITIONS"]
    assert partitions == environment(compose["services"]["worker"])["FLOWGAUGE_PARTITIONS"]
    assert int(partitions) == FlowgaugeConfig.model_fields["partitions"].default
    assert {name: init["depends_on"][name]["condition"] for name in BROKERS} == dict.fromkeys(
        BROKERS, "service_healthy"
    )
    for name in ("worker", "simulator", "web"):
        condition = compose["services"][name]["depends_on"]["kafka-init"]["condition"]
        assert condition == "service_completed_successfully", name


def flowgauge_variables(compose: dict[str, Any]) -> dict[str, dict[str, str]]:
    found = {
        name: {k: v for k, v in environment(service).items() if k.startswith("FLOWGAUGE_")}
        for name, service in compose["services"].items()
    }
    dockerfile = (ROOT / "Dockerfile").read_text()
    found["Dockerfile"] = dict(re.findall(r"\b(FLOWGAUGE_\w+)=(\S+)", dockerfile))
    return found


def test_every_flowgauge_variable_is_a_setting_the_config_reads(compose: dict[str, Any]) -> None:
    fields = set(FlowgaugeConfig.model_fields)
    used = flowgauge_variables(compose)
    assert used["worker"]
    assert used["Dockerfile"]
    for where, variables in used.items():
        for name in variables:
            if name == "FLOWGAUGE_CONFIG":  # the settings file, which the config reads too
                continue
            assert name.removeprefix("FLOWGAUGE_").lower() in fields, f"{where}: {name}"


def test_the_worker_environment_is_a_valid_config(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(FlowgaugeConfig.model_fields):
        monkeypatch.delenv(f"FLOWGAUGE_{name.upper()}", raising=False)
    monkeypatch.delenv("FLOWGAUGE_CONFIG", raising=False)
    used = flowgauge_variables(compose)
    for name, value in {**used["Dockerfile"], **used["worker"]}.items():
        monkeypatch.setenv(name, value)
    config = FlowgaugeConfig()
    config.core()
    assert Kafka.of(config).servers == tuple(f"{name}:9092" for name in BROKERS)
    assert config.web_host == "0.0.0.0"
    assert config.web_port == 6066


def test_the_web_view_serves_the_topics_of_the_workers_on_its_published_port(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`flowgauge web`: its command is one the CLI takes, it listens on the port compose
    publishes and its health check asks, it reads the workers' brokers at their step, and it
    runs with the settings it is given (no credentials: aggregates only)."""
    from streams.commands.cli import _parser

    services = compose["services"]
    web, worker = services["web"], services["worker"]
    assert (web["build"], web["image"]) == (worker["build"], worker["image"])
    assert web["command"] == ["web", "--host", "0.0.0.0", "--port", "8080"]
    assert "profiles" not in web, "started by a plain `docker compose up`"
    assert "volumes" not in web, "its history is in memory only"
    args = _parser().parse_args(web["command"])
    assert (args.host, args.port) == ("0.0.0.0", 8080)
    assert web["ports"] == [f"{args.port}:{args.port}"]
    check = " ".join(web["healthcheck"]["test"])
    assert f"http://127.0.0.1:{args.port}/healthz" in check
    assert web["healthcheck"]["test"][:2] == worker["healthcheck"]["test"][:2]
    ours, workers = environment(web), environment(worker)
    for name in ("FLOWGAUGE_BROKER", "FLOWGAUGE_STEP", "FLOWGAUGE_APP_ID"):
        assert ours[name] == workers[name], name
    assert "http://localhost:8080" in COMPOSE.read_text().split("\nname:")[0], "in the header"
    for name in list(FlowgaugeConfig.model_fields):
        monkeypatch.delenv(f"FLOWGAUGE_{name.upper()}", raising=False)
    monkeypatch.delenv("FLOWGAUGE_CONFIG", raising=False)
    used = flowgauge_variables(compose)
    for name, value in {**used["Dockerfile"], **used["web"]}.items():
        monkeypatch.setenv(name, value)
    config = FlowgaugeConfig(ui_host=args.host, ui_port=args.port)
    config.core()
    assert Kafka.of(config).servers == tuple(f"{name}:9092" for name in BROKERS)
    assert (config.ui_host, config.ui_port) == ("0.0.0.0", 8080)
    assert (config.web_token, config.web_username, config.web_password) == (None, None, None)
