"""deploy/kubernetes/gateway: the webhook gateway's manifests, valid for Kubernetes (the same
schemas as tests/test_kubernetes.py) and consistent with the code they run and with the
workers' manifests beside them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from streams.config import FlowgaugeConfig
from tests.test_kubernetes import FILLED, KUBERNETES, NAMESPACE, filled, schema_errors

GATEWAY = KUBERNETES / "gateway"
Document = dict[str, Any]
LABELS = {"app.kubernetes.io/name": "flowgauge", "app.kubernetes.io/component": "gateway"}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def manifests() -> dict[str, Document]:
    return {
        name: load(GATEWAY / name) for name in load(GATEWAY / "kustomization.yaml")["resources"]
    }


def one(kind: str, folder: Path = GATEWAY) -> Document:
    (document,) = [
        doc
        for doc in (load(path) for path in sorted(folder.glob("*.yaml")))
        if doc.get("kind") == kind
    ]
    return document


def container() -> Document:
    (gateway,) = one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert gateway["name"] == "gateway"
    result: Document = gateway
    return result


def environment(of: Document) -> dict[str, Document]:
    return {entry["name"]: entry for entry in of["env"]}


def test_the_kustomization_lists_every_manifest_in_the_namespace() -> None:
    files = sorted(path.name for path in GATEWAY.glob("*.yaml"))
    files.remove("kustomization.yaml")
    assert sorted(manifests()) == files
    assert load(GATEWAY / "kustomization.yaml")["namespace"] == NAMESPACE


@pytest.mark.parametrize("name", sorted(manifests()))
def test_each_manifest_is_valid_for_its_kind(name: str) -> None:
    assert schema_errors(manifests()[name]) == [], name


def assert_kustomize_renders(folder: Path, documents: dict[str, Any]) -> None:
    """``kubectl kustomize folder`` renders ``documents``, each valid, in the namespace."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not on PATH: `kubectl kustomize` output not checked")
    output = subprocess.run(
        [kubectl, "kustomize", str(folder)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    rendered = [doc for doc in yaml.safe_load_all(output) if doc]
    assert sorted((doc["kind"], doc["metadata"]["name"]) for doc in rendered) == sorted(
        (doc["kind"], doc["metadata"]["name"]) for doc in documents.values()
    )
    for document in rendered:
        assert schema_errors(document) == [], document["kind"]
        assert document["metadata"]["namespace"] == NAMESPACE


def test_kustomize_renders_them_valid_in_the_namespace() -> None:
    assert_kustomize_renders(GATEWAY, manifests())


def test_the_gateway_listens_where_the_service_sends() -> None:
    gateway = container()
    assert gateway["args"] == ["gateway", "--host", "0.0.0.0", "--port", "8090"]
    assert gateway["ports"] == [{"name": "http", "containerPort": 8090, "protocol": "TCP"}]
    (port,) = one("Service")["spec"]["ports"]
    assert port == {"name": "http", "port": 8090, "targetPort": "http", "protocol": "TCP"}
    for probe in ("readinessProbe", "livenessProbe"):
        assert gateway[probe]["tcpSocket"] == {"port": "http"}


def test_every_selector_selects_the_gateways_and_no_worker() -> None:
    pod_labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    worker_labels = one("Deployment", KUBERNETES)["spec"]["template"]["metadata"]["labels"]
    selectors = [
        one("Deployment")["spec"]["selector"]["matchLabels"],
        one("Service")["spec"]["selector"],
        one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector == LABELS
        assert selector.items() <= pod_labels.items()
        assert not selector.items() <= worker_labels.items()
    assert one("PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert one("Deployment")["spec"]["replicas"] == 2


def test_the_pod_runs_as_the_dockerfiles_user_locked_down() -> None:
    context = container()["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 10001
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert one("Deployment")["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_the_gateway_joins_the_workers_cluster() -> None:
    ours, workers = (
        environment(container()),
        environment(one("Deployment", KUBERNETES)["spec"]["template"]["spec"]["containers"][0]),
    )
    for name in (
        "FLOWGAUGE_BROKER", "FLOWGAUGE_SECURITY_PROTOCOL", "FLOWGAUGE_SASL_MECHANISM",
        "FLOWGAUGE_SASL_USERNAME", "FLOWGAUGE_SASL_PASSWORD_FILE", "FLOWGAUGE_SSL_CA_FILE",
        "FLOWGAUGE_PARTITIONS",
    ):  # fmt: skip
        assert ours[name] == workers[name], name


def test_the_environment_and_the_sources_secret_make_a_valid_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the gateway would read it in the pod: each file a Secret volume mounts is written
    under tmp_path and the variable naming it points there."""
    for name in FlowgaugeConfig.model_fields:
        monkeypatch.delenv(f"FLOWGAUGE_{name.upper()}", raising=False)
    secrets = {
        doc["metadata"]["name"]: doc["stringData"]
        for doc in (load(KUBERNETES / "secret-kafka.yaml"), one("Secret"))
    }
    spec = one("Deployment")["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume["secret"] for volume in spec["volumes"] if "secret" in volume}
    files: dict[PurePosixPath, str] = {}
    for mount in container()["volumeMounts"]:
        if mount["name"] in volumes:
            assert mount["readOnly"] is True
            source = volumes[mount["name"]]
            keys = source.get("items") or [
                {"key": k, "path": k} for k in secrets[source["secretName"]]
            ]
            for item in keys:
                files[PurePosixPath(mount["mountPath"]) / item["path"]] = secrets[
                    source["secretName"]
                ][item["key"]]
    for name, entry in environment(container()).items():
        if "valueFrom" in entry:
            reference = entry["valueFrom"]["secretKeyRef"]
            monkeypatch.setenv(name, filled(secrets[reference["name"]][reference["key"]]))
            continue
        value = entry["value"]
        if PurePosixPath(value) in files:
            copy = tmp_path / PurePosixPath(value).name
            copy.write_text(filled(files[PurePosixPath(value)]))
            value = str(copy)
        monkeypatch.setenv(name, value)
    no_arguments: dict[str, Any] = {}
    config = FlowgaugeConfig(**no_arguments)
    (source,) = config.gateway.sources
    assert (source.name, source.kind, source.account) == ("github", "github", FILLED)
    assert source.secret is not None
    assert source.secret.get_secret_value() == FILLED
    source.connector()
    assert (
        config.ticket_link(f"github:{FILLED}:acme/app:42")
        == "https://github.com/acme/app/issues/42"
    )


def test_the_secret_holds_placeholders_only() -> None:
    secret = one("Secret")
    assert "data" not in secret
    assert all("REPLACE-ME" in value for value in secret["stringData"].values())
