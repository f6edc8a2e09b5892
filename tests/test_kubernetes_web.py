"""deploy/kubernetes/web: the web view's manifests, valid for Kubernetes (the same schemas as
tests/test_kubernetes.py) and consistent with the code they run (the `web` command, its
settings and who may read its pages) and with the workers' and the gateway's manifests."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from streams.commands.cli import _parser
from streams.config import FlowgaugeConfig
from streams.outputs.access import Access
from streams.web.service import view_settings
from tests.test_kubernetes import (
    FILLED,
    KUBERNETES,
    NAMESPACE,
    filled,
    schema_errors,
    setting_names,
)
from tests.test_kubernetes_gateway import (
    GATEWAY,
    assert_kustomize_renders,
    environment,
    load,
    one,
)

WEB = KUBERNETES / "web"
Document = dict[str, Any]
LABELS = {"app.kubernetes.io/name": "flowgauge", "app.kubernetes.io/component": "web"}
PORT = 8080
# Read by FlowgaugeConfig.settings_customise_sources itself, not a field.
CONFIG_FILE_VARIABLE = "FLOWGAUGE_CONFIG"
# The workers' Kafka client settings: the web view reads the topics they write.
CLUSTER = (
    "FLOWGAUGE_BROKER",
    "FLOWGAUGE_SECURITY_PROTOCOL",
    "FLOWGAUGE_SASL_MECHANISM",
    "FLOWGAUGE_SASL_USERNAME",
    "FLOWGAUGE_SASL_PASSWORD_FILE",
    "FLOWGAUGE_SSL_CA_FILE",
)


def manifests() -> dict[str, Document]:
    return {name: load(WEB / name) for name in load(WEB / "kustomization.yaml")["resources"]}


def pod_spec(folder: Path = WEB) -> Document:
    spec: Document = one("Deployment", folder)["spec"]["template"]["spec"]
    return spec


def container() -> Document:
    (web,) = pod_spec()["containers"]
    assert web["name"] == "web"
    result: Document = web
    return result


def workers_container() -> Document:
    (worker,) = pod_spec(KUBERNETES)["containers"]
    result: Document = worker
    return result


def pod_labels(folder: Path) -> dict[str, str]:
    labels: dict[str, str] = one("Deployment", folder)["spec"]["template"]["metadata"]["labels"]
    return labels


def secret_mounts(spec: Document, of: Document) -> dict[str, tuple[str, Document]]:
    """Each Secret volume `of` mounts: (mount path, the volume's secret) by volume name."""
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    return {
        mount["name"]: (mount["mountPath"], volumes[mount["name"]]["secret"])
        for mount in of["volumeMounts"]
        if "secret" in volumes[mount["name"]]
    }


# --- The manifests -------------------------------------------------------------------------


def test_the_kustomization_lists_every_manifest_in_the_namespace() -> None:
    files = sorted(path.name for path in WEB.glob("*.yaml"))
    files.remove("kustomization.yaml")
    assert sorted(manifests()) == files
    assert len(set(manifests())) == len(load(WEB / "kustomization.yaml")["resources"])
    assert not list(WEB.glob("*.yml")), "name manifests *.yaml"
    assert load(WEB / "kustomization.yaml")["namespace"] == NAMESPACE
    kinds = sorted(doc["kind"] for doc in manifests().values())
    assert kinds == ["Deployment", "PodDisruptionBudget", "Service"]


@pytest.mark.parametrize("name", sorted(manifests()))
def test_each_manifest_is_valid_for_its_kind(name: str) -> None:
    assert schema_errors(manifests()[name]) == [], name


def test_kustomize_renders_them_valid_in_the_namespace() -> None:
    assert_kustomize_renders(WEB, manifests())


# --- The container -------------------------------------------------------------------------


def test_the_web_view_listens_where_the_service_and_the_probes_ask() -> None:
    web = container()
    assert web["args"] == ["web", "--host", "0.0.0.0", "--port", str(PORT)]
    assert "command" not in web, "keep the image's entrypoint"
    assert web["ports"] == [{"name": "http", "containerPort": PORT, "protocol": "TCP"}]
    (port,) = one("Service", WEB)["spec"]["ports"]
    assert port == {"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}
    assert web["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert web["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # The arguments are ones the CLI takes, and they are the settings the server listens on.
    args = _parser().parse_args(web["args"])
    config = FlowgaugeConfig(ui_host=args.host, ui_port=args.port)
    assert (config.ui_host, config.ui_port) == ("0.0.0.0", PORT)


def test_every_selector_selects_the_web_pods_and_no_worker_or_gateway() -> None:
    labels = pod_labels(WEB)
    others = {"worker": pod_labels(KUBERNETES), "gateway": pod_labels(GATEWAY)}
    selectors = {
        "Deployment": one("Deployment", WEB)["spec"]["selector"]["matchLabels"],
        "Service": one("Service", WEB)["spec"]["selector"],
        "PodDisruptionBudget": one("PodDisruptionBudget", WEB)["spec"]["selector"]["matchLabels"],
    }
    for kind, selector in selectors.items():
        assert selector == LABELS, kind
        assert selector.items() <= labels.items(), kind
        for name, other in others.items():
            assert not selector.items() <= other.items(), f"{kind} selects the {name} pods"
    # And theirs do not select the web pods.
    for folder in (KUBERNETES, GATEWAY):
        for kind in ("Deployment", "PodDisruptionBudget"):
            selector = one(kind, folder)["spec"]["selector"]["matchLabels"]
            assert not selector.items() <= labels.items(), f"{folder.name} {kind}"
        assert not one("Service", folder)["spec"]["selector"].items() <= labels.items()


def test_two_replicas_roll_and_one_survives_a_drain() -> None:
    deployment = one("Deployment", WEB)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert one("PodDisruptionBudget", WEB)["spec"]["minAvailable"] == 1


def test_the_pod_runs_as_the_dockerfiles_user_locked_down() -> None:
    spec = pod_spec()
    # The pod's security context is the workers' and the gateway's.
    assert spec["securityContext"] == pod_spec(KUBERNETES)["securityContext"]
    assert spec["securityContext"] == pod_spec(GATEWAY)["securityContext"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    context = container()["securityContext"]
    assert context == workers_container()["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 10001
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["serviceAccountName"] == pod_spec(KUBERNETES)["serviceAccountName"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False


def test_it_keeps_nothing_on_disk_but_a_tmp() -> None:
    """History in memory only: the one writable place is an emptyDir /tmp (the root
    filesystem is read-only); every other volume is a Secret, mounted read-only."""
    volumes = {volume["name"]: volume for volume in pod_spec()["volumes"]}
    mounts = {mount["name"]: mount for mount in container()["volumeMounts"]}
    assert set(mounts) == set(volumes)
    assert mounts["tmp"]["mountPath"] == "/tmp"
    assert "readOnly" not in mounts["tmp"]
    assert volumes["tmp"]["emptyDir"]["sizeLimit"]
    for name, volume in volumes.items():
        if name != "tmp":
            assert set(volume) == {"name", "secret"}, name
            assert mounts[name]["readOnly"] is True, name
    assert "FLOWGAUGE_DATA_DIR" not in environment(container())


def test_resources_are_set_with_room_for_the_history_in_memory() -> None:
    resources = container()["resources"]
    assert resources == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    text = (WEB / "deployment.yaml").read_text()
    assert re.search(r"#.*history is held in memory", text), "say why, beside it"


def test_service_links_are_off_in_every_pod_beside_a_service_named_flowgauge_web() -> None:
    """A Service named flowgauge-web would give every pod with service links
    FLOWGAUGE_WEB_PORT=tcp://..., which the workers read as their metrics port."""
    assert one("Service", WEB)["metadata"]["name"] == "flowgauge-web"
    for folder in (KUBERNETES, GATEWAY, WEB):
        assert pod_spec(folder)["enableServiceLinks"] is False, folder.name


# --- The settings --------------------------------------------------------------------------


def test_it_joins_the_workers_cluster_with_their_settings() -> None:
    ours, workers = environment(container()), environment(workers_container())
    assert len(ours) == len(container()["env"]), "a variable set twice"
    for name in (*CLUSTER, "FLOWGAUGE_STEP", CONFIG_FILE_VARIABLE):
        assert ours[name] == workers[name], name
    # The files those variables name are mounted from the same Secrets, at the same paths.
    web_secrets = secret_mounts(pod_spec(), container())
    worker_secrets = secret_mounts(pod_spec(KUBERNETES), workers_container())
    for name in ("kafka", "config"):
        assert web_secrets[name] == worker_secrets[name], name
    # And its gateway's, which writes the topics the workers read.
    gateway = environment(pod_spec(GATEWAY)["containers"][0])
    assert {name: ours[name] for name in CLUSTER} == {name: gateway[name] for name in CLUSTER}


def test_every_flowgauge_variable_is_a_setting_it_knows() -> None:
    used = set(environment(container()))
    assert all(name.startswith("FLOWGAUGE_") for name in used)
    assert used - {CONFIG_FILE_VARIABLE} <= setting_names()
    assert "FLOWGAUGE_WEB_TOKEN_FILE" not in used, "a browser cannot send a bearer token"


def test_the_credentials_come_from_the_web_secret_and_are_optional() -> None:
    env = environment(container())
    secret = load(KUBERNETES / "secret-web.yaml")
    assert "secret-web.yaml" in load(KUBERNETES / "kustomization.yaml")["resources"]
    for name, key in [
        ("FLOWGAUGE_WEB_USERNAME", "username"),
        ("FLOWGAUGE_WEB_PASSWORD", "password"),
    ]:
        assert env[name]["valueFrom"] == {
            "secretKeyRef": {"name": secret["metadata"]["name"], "key": key, "optional": True}
        }, name


def pod_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, extra: dict[str, dict[str, str]]
) -> FlowgaugeConfig:
    """The settings as the web view reads them in the pod, from its variables and the
    placeholder Secrets of deploy/kubernetes (plus `extra` keys): a file a Secret volume
    mounts is written under tmp_path and the variable naming it points there; a secretKeyRef
    takes the key's value, and an optional one whose key is missing sets nothing."""
    for name in setting_names() | {CONFIG_FILE_VARIABLE}:
        monkeypatch.delenv(name, raising=False)
    secrets: dict[str, dict[str, str]] = {}
    for path in sorted(KUBERNETES.glob("secret-*.yaml")):
        document = load(path)
        secrets[document["metadata"]["name"]] = dict(document["stringData"])
    for name, keys in extra.items():
        secrets[name].update(keys)
    files: dict[PurePosixPath, str] = {}
    for path, source in secret_mounts(pod_spec(), container()).values():
        stored = secrets[source["secretName"]]
        items = source.get("items") or [{"key": key, "path": key} for key in stored]
        for item in items:
            files[PurePosixPath(path) / item["path"]] = stored[item["key"]]
    for name, entry in environment(container()).items():
        if "valueFrom" in entry:
            reference = entry["valueFrom"]["secretKeyRef"]
            stored = secrets[reference["name"]]
            if reference["key"] not in stored:
                assert reference.get("optional") is True, name
                continue
            monkeypatch.setenv(name, filled(stored[reference["key"]]))
            continue
        value = entry["value"]
        if PurePosixPath(value) in files:
            copy_of = tmp_path / PurePosixPath(value).name
            copy_of.write_text(filled(files[PurePosixPath(value)]))
            value = str(copy_of)
        monkeypatch.setenv(name, value)
    no_arguments: dict[str, Any] = {}
    return FlowgaugeConfig(**no_arguments)


def test_as_shipped_it_shows_aggregates_to_anyone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flowgauge-web Secret holds only the workers' `token`: no basic auth, no ticket ids."""
    config = pod_config(monkeypatch, tmp_path, {})
    assert config.broker == "kafka://my-cluster-kafka-bootstrap.kafka:9093"
    assert (config.security_protocol, config.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert config.sasl_password is not None
    assert config.ssl_ca_file == tmp_path / "ca.crt"
    assert config.step_seconds == 300
    config.core()
    assert (config.web_username, config.web_password, config.web_token) == (None, None, None)
    access = Access.of(config)
    assert (access.token, access.basic) == (None, None)
    assert view_settings(config, show_tickets=False).timezone == "UTC"


def test_with_a_username_and_password_it_asks_for_them_and_shows_ticket_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = {"flowgauge-web": {"username": "lead", "password": "REPLACE-ME"}}
    config = pod_config(monkeypatch, tmp_path, extra)
    access = Access.of(config)
    assert access.basic == f"lead:{FILLED}".encode()
    assert access.token is None
    assert access.challenge() == 'Basic realm="flowgauge"', "one a browser can answer"
    assert access.status("/", None) == 401
    assert access.status("/api/view", None) == 401
    assert access.status("/healthz", None) == 200
