"""deploy/kubernetes/ without a cluster: every manifest against the Kubernetes JSON schemas
(kubernetes-validate, strict) or the Prometheus Operator's CRD schemas (tests/schemas/), the
output of `kubectl kustomize` the same way, and the manifests against the code they run: the
settings, the probes' port, the Dockerfile's user and command, docker-compose.yml's worker,
the Prometheus rules."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import pytest
import yaml

from streams.config import ChatDestination, FlowgaugeConfig
from streams.outputs.delivery import CHAT_DRAIN_SECONDS
from tests.conftest import ROOT

KUBERNETES = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = KUBERNETES / "kustomization.yaml"
RULES = ROOT / "deploy" / "prometheus" / "rules"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
# The newest Kubernetes whose schemas kubernetes-validate bundles (1.37.0 in its 1.37.0).
KUBERNETES_VERSION = "1.37.0"
NAMESPACE = "flowgauge"
# The Operator's kinds: no Kubernetes schema knows them; their CRD schemas are vendored.
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
}
# Read by FlowgaugeConfig.settings_customise_sources itself, not a field.
CONFIG_FILE_VARIABLE = "FLOWGAUGE_CONFIG"
# The Kafka security and web token settings: new in FlowgaugeConfig with these manifests.
SECURITY_SETTINGS = frozenset(
    {
        "FLOWGAUGE_SECURITY_PROTOCOL",
        "FLOWGAUGE_SASL_MECHANISM",
        "FLOWGAUGE_SASL_USERNAME",
        "FLOWGAUGE_SASL_PASSWORD_FILE",
        "FLOWGAUGE_SSL_CA_FILE",
        "FLOWGAUGE_WEB_TOKEN_FILE",
    }
)
Document = dict[str, Any]


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def listed_files() -> list[str]:
    resources: list[str] = load(KUSTOMIZATION)["resources"]
    return resources


@cache
def manifests() -> dict[str, Document]:
    """Each file the kustomization lists, by file name (one document per file)."""
    found: dict[str, Document] = {}
    for name in listed_files():
        documents = [doc for doc in yaml.safe_load_all((KUBERNETES / name).read_text()) if doc]
        assert len(documents) == 1, f"{name}: one document per file"
        found[name] = documents[0]
    return found


def of_kind(kind: str) -> list[Document]:
    return [doc for doc in manifests().values() if doc["kind"] == kind]


def one(kind: str) -> Document:
    (document,) = of_kind(kind)
    return document


def pod_spec() -> Document:
    spec: Document = one("Deployment")["spec"]["template"]["spec"]
    return spec


def worker() -> Document:
    (container,) = pod_spec()["containers"]
    assert container["name"] == "worker"
    result: Document = container
    return result


def environment() -> dict[str, Document]:
    """The worker's env entries by name (each with its `value` or `valueFrom`)."""
    entries: list[Document] = worker()["env"]
    names = [entry["name"] for entry in entries]
    assert len(names) == len(set(names)), "a variable set twice"
    return {entry["name"]: entry for entry in entries}


def flowgauge_variables() -> set[str]:
    return {name for name in environment() if name.startswith("FLOWGAUGE_")}


def setting_names() -> set[str]:
    """The variable of each FlowgaugeConfig field: prefix FLOWGAUGE_, name upper-cased."""
    return {f"FLOWGAUGE_{field.upper()}" for field in FlowgaugeConfig.model_fields}


# --- Schemas ------------------------------------------------------------------------------


def closed(schema: Any) -> Any:
    """A copy of an OpenAPI v3 schema that rejects unknown fields where the API server's
    strict field validation would: every object schema with `properties` and neither
    `additionalProperties` nor `x-kubernetes-preserve-unknown-fields`."""
    schema = copy.deepcopy(schema)

    def close(node: Any) -> None:
        if not isinstance(node, dict):
            return
        properties = node.get("properties")
        if isinstance(properties, dict):
            for child in properties.values():
                close(child)
            if not ({"additionalProperties", "x-kubernetes-preserve-unknown-fields"} & set(node)):
                node["additionalProperties"] = False
        for keyword in ("items", "additionalProperties", "not"):
            close(node.get(keyword))
        for keyword in ("anyOf", "allOf", "oneOf"):
            for child in node.get(keyword, []):
                close(child)

    close(schema)
    return schema


@cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[(api_version, kind)]).read_text())
    return jsonschema.Draft7Validator(closed(schema))


def schema_errors(document: Document) -> list[str]:
    """Why `document` is not a valid object of its kind ([] when it is)."""
    key = (document["apiVersion"], document["kind"])
    if key in CRD_SCHEMAS:
        errors = [
            f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in crd_validator(*key).iter_errors(document)
        ]
        # The CRD schema leaves metadata open; the API server still checks it as ObjectMeta.
        as_kubernetes = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": document["metadata"]}
        return errors + [f"metadata: {error}" for error in kubernetes_errors(as_kubernetes)]
    return kubernetes_errors(document)


def kubernetes_errors(document: Document) -> list[str]:
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = "/".join(map(str, error.absolute_path))
        return [f"{where}: {error.message}"]
    return []


def test_the_kubernetes_version_is_one_kubernetes_validate_bundles() -> None:
    assert KUBERNETES_VERSION in kubernetes_validate.utils.all_versions()


def test_the_kustomization_lists_every_manifest_and_nothing_else() -> None:
    files = sorted(path.name for path in KUBERNETES.glob("*.yaml"))
    files.remove(KUSTOMIZATION.name)
    assert sorted(listed_files()) == files
    assert len(set(listed_files())) == len(listed_files())
    assert not list(KUBERNETES.glob("*.yml")), "name manifests *.yaml"


def test_the_kustomization_puts_everything_in_the_flowgauge_namespace() -> None:
    kustomization = load(KUSTOMIZATION)
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == NAMESPACE
    assert one("Namespace")["metadata"]["name"] == NAMESPACE


@pytest.mark.parametrize("name", listed_files())
def test_each_manifest_is_valid_for_its_kind(name: str) -> None:
    document = manifests()[name]
    assert schema_errors(document) == [], name


def test_the_kinds() -> None:
    kinds = sorted(doc["kind"] for doc in manifests().values())
    assert kinds == sorted(
        [
            "Deployment",
            "Namespace",
            "PodDisruptionBudget",
            "PodMonitor",
            "PrometheusRule",
            "Secret",
            "Secret",
            "Secret",
            "Service",
            "ServiceAccount",
        ]
    )


def test_the_validation_catches_mistakes() -> None:
    """Strict: an unknown (misspelt) field or a wrong type fails, for both kinds of schema."""
    deployment = copy.deepcopy(one("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    assert schema_errors(deployment)
    deployment = copy.deepcopy(one("Deployment"))
    deployment["spec"]["replicas"] = "two"
    assert schema_errors(deployment)
    monitor = copy.deepcopy(one("PodMonitor"))
    monitor["spec"]["podMetricsEndpoints"][0]["intervall"] = "15s"
    assert schema_errors(monitor)
    rule = copy.deepcopy(one("PrometheusRule"))
    rule["spec"]["groups"][0]["rules"][0]["for"] = "fifteen minutes"
    assert schema_errors(rule)
    rule = copy.deepcopy(one("PrometheusRule"))
    rule["metadata"]["label"] = {"misspelt": "labels"}
    assert schema_errors(rule)


# --- kubectl kustomize ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> list[Document]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not on PATH: `kubectl kustomize` output not checked")
    result = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_kustomize_renders_every_manifest_valid_in_the_namespace(
    rendered: list[Document],
) -> None:
    assert sorted((doc["kind"], doc["metadata"]["name"]) for doc in rendered) == sorted(
        (doc["kind"], doc["metadata"]["name"]) for doc in manifests().values()
    )
    for document in rendered:
        where = f"{document['kind']}/{document['metadata']['name']}"
        assert schema_errors(document) == [], where
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == NAMESPACE, where


# --- The workers ---------------------------------------------------------------------------


def test_the_deployment_recreates_so_old_and_new_workers_never_run_together() -> None:
    deployment = one("Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment["spec"]["replicas"] == 2
    text = (KUBERNETES / "deployment.yaml").read_text()
    assert re.search(r"#.*refuses state written by a newer", text), "say why, beside it"


def test_the_image_and_command_are_the_dockerfiles() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert '\nENTRYPOINT ["flowgauge"]' in dockerfile
    assert '\nCMD ["worker"]' in dockerfile
    container = worker()
    assert container["image"] == "flowgauge:latest"
    assert container["args"] == ["worker"]
    assert "command" not in container, "keep the image's entrypoint"


def test_the_web_port_is_named_web_and_everything_reaches_it_by_name() -> None:
    (port,) = worker()["ports"]
    assert port == {"name": "web", "containerPort": 6066, "protocol": "TCP"}
    assert environment()["FLOWGAUGE_WEB_PORT"]["value"] == "6066"
    assert environment()["FLOWGAUGE_WEB_HOST"]["value"] == "0.0.0.0"
    (service_port,) = one("Service")["spec"]["ports"]
    assert service_port == {"name": "web", "port": 6066, "targetPort": "web", "protocol": "TCP"}
    (endpoint,) = one("PodMonitor")["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("web", "/metrics", "15s")


def test_the_probes() -> None:
    container = worker()
    for probe, path in [
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ]:
        assert container[probe]["httpGet"] == {"path": path, "port": "web"}, probe
    liveness, startup = container["livenessProbe"], container["startupProbe"]
    # Lenient: the worker restarts itself first (FLOWGAUGE_STALL_RESTART), and /healthz
    # fails only after that plus a margin.
    assert liveness["periodSeconds"] == 10
    assert liveness["failureThreshold"] >= 6
    # A long table recovery before liveness takes over.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    assert container["readinessProbe"]["periodSeconds"] == 5


def test_the_grace_period_outlasts_chat_delivery_and_the_last_commit() -> None:
    grace = pod_spec()["terminationGracePeriodSeconds"]
    attempt = ChatDestination.model_fields["timeout_seconds"].default
    assert grace >= 2 * (CHAT_DRAIN_SECONDS + attempt), grace
    text = (KUBERNETES / "deployment.yaml").read_text()
    assert re.search(r"#.*CHAT_DRAIN_SECONDS", text), "say why, beside it"


def test_the_pod_runs_as_the_dockerfiles_user_locked_down() -> None:
    uid = re.search(r"--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert uid is not None
    assert re.search(r"^USER flowgauge$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    pod = pod_spec()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(uid.group(1))
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = worker()["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == int(uid.group(1)) == 10001
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    account = one("ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert account["automountServiceAccountToken"] is False
    assert pod["automountServiceAccountToken"] is False
    # Service links would put FLOWGAUGE_<SERVICE>_... variables into the worker's settings.
    assert pod["enableServiceLinks"] is False


def test_resources_are_set() -> None:
    resources = worker()["resources"]
    assert resources["requests"]["cpu"] == "1", "one worker uses about one core (BENCHMARKS.md)"
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
    text = (KUBERNETES / "deployment.yaml").read_text()
    assert re.search(r"#.*BENCHMARKS\.md", text), "name the figures, beside them"


def test_every_selector_selects_the_workers() -> None:
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    selectors = {
        "Deployment": one("Deployment")["spec"]["selector"]["matchLabels"],
        "PodDisruptionBudget": one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        "PodMonitor": one("PodMonitor")["spec"]["selector"]["matchLabels"],
        "Service": one("Service")["spec"]["selector"],
    }
    for kind, selector in selectors.items():
        assert selector, kind
        assert selector.items() <= labels.items(), kind
    assert one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_the_pod_monitor_sends_credentials_exactly_when_metrics_asks_for_them() -> None:
    asks = environment().get("FLOWGAUGE_WEB_AUTH_METRICS", {}).get("value", "false")
    (endpoint,) = one("PodMonitor")["spec"]["podMetricsEndpoints"]
    assert ("authorization" in endpoint) == (asks.lower() in {"true", "1", "yes", "on"})


def test_the_scraped_job_is_the_one_the_alerts_watch() -> None:
    """`up{job="flowgauge"}` in the rules: the PodMonitor takes the job from a pod label."""
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    job = labels[one("PodMonitor")["spec"]["jobLabel"]]
    jobs = set(re.findall(r'\bjob="([^"]*)"', (RULES / "alerts.yml").read_text()))
    assert jobs == {job} == {"flowgauge"}


# --- Settings ------------------------------------------------------------------------------


def test_every_flowgauge_variable_is_a_setting_the_worker_knows() -> None:
    """Every FLOWGAUGE_ variable is a FlowgaugeConfig field, or FLOWGAUGE_CONFIG, which the
    settings read themselves."""
    used = flowgauge_variables()
    assert CONFIG_FILE_VARIABLE in used
    assert used >= SECURITY_SETTINGS
    assert used - {CONFIG_FILE_VARIABLE} <= setting_names()


def test_the_settings_docker_compose_also_sets_have_its_values() -> None:
    compose = load(ROOT / "docker-compose.yml")
    # ${NAME:-default}: compose's interpolation, at the default.
    given = {
        name: re.sub(r"\$\{\w+:?-([^}]*)\}", r"\1", str(value))
        for name, value in compose["services"]["worker"]["environment"].items()
    }
    ours = {name: entry.get("value") for name, entry in environment().items()}
    shared = (set(given) & set(ours)) - {"FLOWGAUGE_BROKER"}  # a cluster of its own
    assert {"FLOWGAUGE_APP_ID", "FLOWGAUGE_PARTITIONS", "FLOWGAUGE_WEB_PORT"} <= shared
    assert {name: ours[name] for name in shared} == {name: given[name] for name in shared}
    assert ours["FLOWGAUGE_PARTITIONS"] == str(FlowgaugeConfig.model_fields["partitions"].default)


def mounted_files() -> dict[PurePosixPath, tuple[str, str]]:
    """Each file the worker's Secret volumes put in the container: (secret, key) by path."""
    secrets = {doc["metadata"]["name"]: doc for doc in of_kind("Secret")}
    volumes = {volume["name"]: volume for volume in pod_spec()["volumes"]}
    files: dict[PurePosixPath, tuple[str, str]] = {}
    for mount in worker()["volumeMounts"]:
        source = volumes[mount["name"]].get("secret")
        if source is None:
            continue
        assert mount["readOnly"] is True, mount["name"]
        secret = secrets[source["secretName"]]
        keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
        items = source.get("items") or [{"key": key, "path": key} for key in keys]
        for item in items:
            assert item["key"] in keys, f"{source['secretName']} has no {item['key']}"
            path = PurePosixPath(mount["mountPath"]) / item["path"]
            files[path] = (source["secretName"], item["key"])
    return files


def test_file_settings_name_files_their_secrets_provide() -> None:
    files = mounted_files()
    expected = {
        CONFIG_FILE_VARIABLE: ("flowgauge-config", "flowgauge.toml"),
        "FLOWGAUGE_SASL_PASSWORD_FILE": ("flowgauge-kafka", "password"),
        "FLOWGAUGE_SSL_CA_FILE": ("flowgauge-kafka", "ca.crt"),
        "FLOWGAUGE_WEB_TOKEN_FILE": ("flowgauge-web", "token"),
    }
    env = environment()
    for name, source in expected.items():
        assert files.get(PurePosixPath(env[name]["value"])) == source, name
    assert env["FLOWGAUGE_SASL_USERNAME"]["valueFrom"] == {
        "secretKeyRef": {"name": "flowgauge-kafka", "key": "username"}
    }
    volumes = {volume["name"]: volume for volume in pod_spec()["volumes"]}
    assert volumes["web"]["secret"]["optional"] is True
    (data,) = [m for m in worker()["volumeMounts"] if m["mountPath"] == "/var/lib/flowgauge"]
    assert env["FLOWGAUGE_DATA_DIR"]["value"] == data["mountPath"]
    assert volumes[data["name"]]["emptyDir"] is not None


def test_the_kafka_security_settings() -> None:
    env = environment()
    assert env["FLOWGAUGE_BROKER"]["value"] == "kafka://my-cluster-kafka-bootstrap.kafka:9093"
    assert env["FLOWGAUGE_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env["FLOWGAUGE_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"


def test_every_secret_value_is_an_obvious_placeholder() -> None:
    for secret in of_kind("Secret"):
        assert "data" not in secret
        for key, value in secret["stringData"].items():
            assert "REPLACE-ME" in value, f"{secret['metadata']['name']}: {key}"


def config_toml() -> str:
    (secret,) = [s for s in of_kind("Secret") if s["metadata"]["name"] == "flowgauge-config"]
    text: str = secret["stringData"]["flowgauge.toml"]
    return text


FILLED = "filled-in"  # what an operator puts where the manifests say REPLACE-ME


def filled(text: str) -> str:
    """A Secret's value as an operator applies it: the placeholders replaced."""
    return text.replace("REPLACE-ME", FILLED)


def test_the_worker_environment_and_config_file_make_a_valid_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the worker would build it in the pod, from its variables and the placeholder
    Secrets: a file a Secret volume mounts is written under tmp_path, and the variable naming
    it points there; a secretKeyRef takes the key's value."""
    for name in setting_names() | {CONFIG_FILE_VARIABLE}:
        monkeypatch.delenv(name, raising=False)
    secrets = {doc["metadata"]["name"]: doc["stringData"] for doc in of_kind("Secret")}
    files = mounted_files()
    for name, entry in environment().items():
        if "valueFrom" in entry:
            reference = entry["valueFrom"]["secretKeyRef"]
            monkeypatch.setenv(name, filled(secrets[reference["name"]][reference["key"]]))
            continue
        value = entry["value"]
        if PurePosixPath(value) in files:
            secret, key = files[PurePosixPath(value)]
            copy_of = tmp_path / secret / key
            copy_of.parent.mkdir(exist_ok=True)
            copy_of.write_text(filled(secrets[secret][key]))
            value = str(copy_of)
        monkeypatch.setenv(name, value)
    # Settings come from the environment; without pydantic's mypy plugin, mypy takes each
    # Field(default, ...) for a required argument.
    no_arguments: dict[str, Any] = {}
    config = FlowgaugeConfig(**no_arguments)
    config.core()
    assert config.broker == "kafka://my-cluster-kafka-bootstrap.kafka:9093"
    assert config.web_host == "0.0.0.0"
    assert config.web_port == 6066
    assert config.data_dir == Path("/var/lib/flowgauge")
    assert config.chat == []
    assert (config.security_protocol, config.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert config.sasl_username == FILLED
    assert config.sasl_password is not None
    assert config.sasl_password.get_secret_value() == FILLED
    assert config.ssl_ca_file == tmp_path / "flowgauge-kafka" / "ca.crt"
    assert config.web_token is not None
    assert config.web_token.get_secret_value() == FILLED
    # /metrics stays open, so the PodMonitor sends no credentials (see the next test).
    assert config.web_auth_metrics is False


def test_the_commented_chat_example_is_a_valid_destination() -> None:
    lines = iter(config_toml().splitlines())
    example = "\n".join(uncommented_from(lines, "# [[chat]]"))
    assert example.startswith("[[chat]]\n"), "a commented [[chat]] example"
    parsed = tomllib.loads(example)
    (destination,) = parsed["chat"]
    chat = ChatDestination.model_validate(destination)
    assert chat.kind == "slack"
    assert "REPLACE-ME" in chat.url.get_secret_value()


def uncommented_from(lines: Iterator[str], start: str) -> Iterator[str]:
    """The commented block from the line `start` to the next line that is only "#"."""
    for line in lines:
        if line.strip() == start:
            yield start.removeprefix("# ")
            break
    for line in lines:
        if line.strip() == "#":
            return
        yield line.strip().removeprefix("# ")


# --- Prometheus Operator -------------------------------------------------------------------


def test_the_prometheus_rule_carries_exactly_the_rule_files_groups() -> None:
    files = sorted(RULES.glob("*.yml"))
    assert [path.name for path in files] == ["alerts.yml", "recording.yml"]
    groups = {group["name"]: group for path in files for group in load(path)["groups"]}
    ours = one("PrometheusRule")["spec"]["groups"]
    assert len(ours) == len({group["name"] for group in ours}), "a group named twice"
    assert {group["name"]: group for group in ours} == groups
    assert set(groups) == {"flowgauge.alerts", "flowgauge.recording"}
