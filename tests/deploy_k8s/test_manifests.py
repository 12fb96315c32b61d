"""Every overlay renders offline, passes strict Kubernetes schema validation and is wired right."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from deploy_k8s.k8s_support import (
    EXAMPLES,
    K8S,
    OVERLAYS,
    SERVICES,
    find,
    render,
)

from sonobridge.common.settings import ServiceSettings

# The oldest Kubernetes the manifests promise (gRPC probes GA in 1.27, matchLabelKeys beta in
# 1.27) and the newest schema set bundled with kubernetes-validate.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())

# Custom resources: no schema ships offline, so these are checked by the wiring tests below.
CUSTOM_GROUPS = {"monitoring.coreos.com", "keda.sh", "kafka.strimzi.io", "minio.min.io"}

TOPICS = [
    "sonobridge.ingest.exam-completed.v1",
    "sonobridge.ingest.instance-stored.v1",
    "sonobridge.inference.inference-completed.v1",
    "sonobridge.reporting.report-routed.v1",
    "sonobridge.reporting.report-signed.v1",
    "sonobridge.reporting.followup-alerted.v1",
    "sonobridge.maintenance.ticket-opened.v1",
    "sonobridge.maintenance.ticket-updated.v1",
    "sonobridge.maintenance.device-status-changed.v1",
]
ANY_ADDRESS = "0.0.0.0"  # noqa: S104 (what the pods must listen on)
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _group(doc: dict[str, Any]) -> str:
    api_version = doc["apiVersion"]
    return api_version.split("/")[0] if "/" in api_version else ""


def _deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in find(docs, "Deployment")}


def _service_deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The four services' Deployments (the viewer is a static web server: no gRPC)."""
    names = {f"sonobridge-{service}" for service in SERVICES}
    return {name: d for name, d in _deployments(docs).items() if name in names}


def _pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in ("Deployment", "Job")
    ]


def _config_maps(docs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d.get("data", {}) for d in find(docs, "ConfigMap")}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", OVERLAYS + EXAMPLES)
def test_rendered_manifests_pass_strict_schema_validation(
    rendered: dict[str, list[dict[str, Any]]], name: str, version: str
) -> None:
    failures, built_in = [], 0
    for doc in rendered[name]:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if _group(doc) in CUSTOM_GROUPS:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(doc, version, strict=True)
            continue
        built_in += 1
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            failures.append(f"{where}: {error.message} at {list(error.path)}")
        except kubernetes_validate.SchemaNotFoundError:
            failures.append(f"{where}: no schema for built-in kind {doc['apiVersion']}")
    assert not failures, "\n".join(failures)
    if name in OVERLAYS:
        assert built_in >= 30


def test_strict_validation_rejects_a_misspelt_field(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    deployment = copy.deepcopy(_deployments(rendered["county"])["sonobridge-ingest"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_kustomize_fails_loudly_on_a_broken_kustomization(kubectl: Path, tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources:\n  - missing.yaml\n")
    with pytest.raises(AssertionError, match="kubectl kustomize"):
        render(kubectl, tmp_path)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_has_its_deploy_unit(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    for service in SERVICES:
        name = f"sonobridge-{service}"
        for kind in (
            "Deployment",
            "Service",
            "ServiceAccount",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "ServiceMonitor",
        ):
            assert len(find(docs, kind, name)) == 1, f"{overlay}: {kind}/{name}"
        assert len(find(docs, "Job", f"{name}-migrate")) == 1
    assert len(find(docs, "Job", "sonobridge-kafka-topics")) == 1
    assert len(find(docs, "PrometheusRule", "sonobridge")) == 1
    assert {d["metadata"]["namespace"] for d in docs if d["kind"] != "Namespace"} == {"sonobridge"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_hardened(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    for where, spec in _pod_specs(rendered[overlay]):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, where
        assert pod["runAsUser"] > 0, where
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec["automountServiceAccountToken"] is False, where
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in ctx["capabilities"], where
            resources = container["resources"]
            for key in ("cpu", "memory"):
                assert key in resources["requests"] and key in resources["limits"], where
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{where}: a read-only root needs a writable /tmp"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_probe_http_and_grpc_health(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    deployments = _service_deployments(rendered[overlay])
    assert len(deployments) == len(SERVICES)
    for name, deployment in deployments.items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["http"] == 8080 and ports["grpc"] == 50051, name
        assert container["startupProbe"]["grpc"]["port"] == ports["grpc"], name
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_get_settings_and_secrets_by_reference(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = rendered[overlay]
    config_maps = _config_maps(docs)
    assert not find(docs, "Secret"), "secrets are created by county IT, never shipped"
    for where, spec in _pod_specs(docs):
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps, where
            secrets = {
                s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s
            }
            if container["image"].startswith("sonobridge/"):
                service = container["image"].split("/")[1].split(":")[0].removesuffix("-gpu")
                assert secrets == {"sonobridge-storage", f"sonobridge-{service}-db"}, where
    common = next(v for k, v in config_maps.items() if k.startswith("sonobridge-common"))
    assert common["EDITION"] == "cluster"
    # The services default to loopback; in a pod they must listen on the pod address.
    assert common["HTTP__HOST"] == ANY_ADDRESS and common["GRPC__HOST"] == ANY_ADDRESS
    # No browser origin is trusted until county IT names its viewer; the value must parse.
    monkeypatch.setenv("HTTP__CORS_ORIGINS", common["HTTP__CORS_ORIGINS"])
    assert ServiceSettings(_env_file=None).http.cors_origins == []
    ingest = next(v for k, v in config_maps.items() if re.fullmatch(r"sonobridge-ingest-\w+", k))
    assert ingest["INGEST__DIMSE_HOST"] == ANY_ADDRESS
    for name, data in config_maps.items():
        if name.startswith(
            (
                "sonobridge-dashboard",
                "sonobridge-kafka-topics-",
                "sonobridge-access-",
                "sonobridge-ohif-",
            )
        ):
            continue
        bad = [key for key in data if not ENV_NAME.match(key)]
        assert not bad, f"ConfigMap {name}: keys must equal env names: {bad}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_holding_patient_data_mount_the_access_policys_institution_registry(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    config_maps = _config_maps(docs)
    common = next(v for k, v in config_maps.items() if k.startswith("sonobridge-common"))
    registry = Path(common["ACCESS__INSTITUTIONS_FILE"])
    [access] = [k for k in config_maps if k.startswith("sonobridge-access-")]
    institutions = json.loads(config_maps[access][registry.name])["institutions"]
    assert {i["tier"] for i in institutions} <= {"township", "county", "provincial"}
    for service in ("ingest", "reporting", "maintenance"):
        spec = _deployments(docs)[f"sonobridge-{service}"]["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        [mount] = [
            m
            for m in spec["containers"][0]["volumeMounts"]
            if m["mountPath"] == str(registry.parent)
        ]
        assert mount.get("readOnly") is True, service
        assert volumes[mount["name"]]["configMap"]["name"] == access, service


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migration_jobs_run_each_service_image_with_migrate(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    for service in SERVICES:
        (job,) = find(rendered[overlay], "Job", f"sonobridge-{service}-migrate")
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["image"].startswith(f"sonobridge/{service}:"), container["image"]
        assert container["args"] == ["migrate"]
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_topic_job_creates_the_architecture_topics(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    config_maps = _config_maps(rendered[overlay])
    script = next(
        v for k, v in config_maps.items() if k.startswith("sonobridge-kafka-topics-script")
    )
    listed = [line for line in script["topics.txt"].splitlines() if line and line[0] != "#"]
    assert listed == TOPICS
    assert "$topic.dlq" in script["create-topics.sh"]


def test_topic_sizing_matches_each_overlay(rendered: dict[str, list[dict[str, Any]]]) -> None:
    def sizing(overlay: str) -> dict[str, str]:
        maps = _config_maps(rendered[overlay])
        return next(v for k, v in maps.items() if re.fullmatch(r"sonobridge-kafka-topics-\w+", k))

    assert sizing("county")["TOPIC_REPLICATION_FACTOR"] == "1"
    prefecture = sizing("prefecture")
    assert prefecture["TOPIC_REPLICATION_FACTOR"] == "3"
    assert prefecture["TOPIC_MIN_INSYNC_REPLICAS"] == "2"
    partitions = int(prefecture["TOPIC_PARTITIONS"])
    for scaled in find(rendered["prefecture"], "ScaledObject"):
        # Consumers beyond the partition count would sit idle.
        assert scaled["spec"]["maxReplicaCount"] <= partitions


def test_county_runs_one_replica_of_everything_on_cpu(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["county"]
    for name, deployment in _deployments(docs).items():
        assert deployment["spec"]["replicas"] == 1, name
        spec = deployment["spec"]["template"]["spec"]
        assert "nvidia.com/gpu" not in spec["containers"][0]["resources"]["limits"], name
    assert not find(docs, "HorizontalPodAutoscaler") and not find(docs, "ScaledObject")
    requested = sum(
        _millicores(d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"])
        for d in _deployments(docs).values()
    )
    assert requested <= 1000, "county services must leave a small node room for Kafka and MinIO"
    (dicom,) = find(docs, "Service", "sonobridge-ingest-dicom")
    assert dicom["spec"]["type"] == "NodePort"


def _millicores(value: str) -> int:
    return int(value[:-1]) if value.endswith("m") else int(float(value) * 1000)


def test_prefecture_autoscales_and_puts_inference_on_gpus(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["prefecture"]
    deployments = _deployments(docs)
    for name, deployment in deployments.items():
        assert "replicas" not in deployment["spec"], f"{name}: the autoscaler owns replicas"
    (hpa,) = find(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "sonobridge-ingest"
    assert hpa["spec"]["minReplicas"] >= 2
    scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in find(docs, "ScaledObject")}
    assert set(scaled) == {"sonobridge-inference", "sonobridge-reporting", "sonobridge-maintenance"}
    assert not set(scaled) & {hpa["spec"]["scaleTargetRef"]["name"]}
    for target, obj in scaled.items():
        assert obj["spec"]["minReplicaCount"] >= 2, target
        kafka = [t for t in obj["spec"]["triggers"] if t["type"] == "kafka"]
        assert kafka, target
        for trigger in kafka:
            meta = trigger["metadata"]
            assert meta["consumerGroup"] == target, target
            assert meta["topic"] in TOPICS, target
            assert meta["bootstrapServersFromEnv"] == "KAFKA__BOOTSTRAP_SERVERS"
            assert int(meta["lagThreshold"]) > 0
    inference = deployments["sonobridge-inference"]["spec"]["template"]["spec"]
    (container,) = inference["containers"]
    assert container["image"].startswith("sonobridge/inference-gpu:")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert inference["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in inference[
        "tolerations"
    ]
    providers = next(
        v for k, v in _config_maps(docs).items() if re.fullmatch(r"sonobridge-inference-\w+", k)
    )["INFERENCE__PROVIDERS"]
    assert providers.split(",")[0] == "CUDAExecutionProvider"
    for name, deployment in deployments.items():
        spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert spread[0]["labelSelector"]["matchLabels"]["app.kubernetes.io/name"] == name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_monitors_select_a_service_with_an_http_port(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    services = find(docs, "Service")
    for monitor in find(docs, "ServiceMonitor"):
        wanted = monitor["spec"]["selector"]["matchLabels"]
        matched = [s for s in services if wanted.items() <= s["metadata"].get("labels", {}).items()]
        assert len(matched) == 1, monitor["metadata"]["name"]
        ports = {p["name"] for p in matched[0]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in ports and endpoint["path"] == "/metrics"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workloads_match_their_services_pdbs_and_policies(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    for name, deployment in _deployments(docs).items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert labels["app.kubernetes.io/part-of"] == "sonobridge"
        (service,) = find(docs, "Service", name)
        assert service["spec"]["selector"].items() <= labels.items()
        container_ports = {
            p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
        }
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports
        (pdb,) = find(docs, "PodDisruptionBudget", name)
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert pdb["spec"]["maxUnavailable"] == 1
        (policy,) = find(docs, "NetworkPolicy", name)
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        assert ({"http", "grpc"} if name in _service_deployments(docs) else {"http"}) <= allowed
    (deny,) = find(docs, "NetworkPolicy", "sonobridge-default-deny")
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ohif_viewer_is_fetched_pinned_and_configured_for_the_realm(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    from sonobridge.node.viewer import OHIF_VERSION, ViewerLogin, app_config

    docs = rendered[overlay]
    (deployment,) = find(docs, "Deployment", "sonobridge-ohif")
    spec = deployment["spec"]["template"]["spec"]
    (fetch,) = spec["initContainers"]
    env = {e["name"]: e["value"] for e in fetch["env"]}
    script = (K8S.parents[1] / "scripts" / "ohif.sh").read_text()
    # The same pinned package and checksum as the setup's cache: never a committed dist.
    assert env["OHIF_VERSION"] == OHIF_VERSION and f"OHIF_VERSION={OHIF_VERSION}" in script
    assert f"OHIF_SHA1={env['OHIF_SHA1']}" in script and "sha1sum -c" in fetch["command"][-1]
    (container,) = spec["containers"]
    assert container["livenessProbe"]["httpGet"]["port"] == "http"
    config = next(v for k, v in _config_maps(docs).items() if k.startswith("sonobridge-ohif-"))
    common = next(v for k, v in _config_maps(docs).items() if k.startswith("sonobridge-common-"))
    reporting = next(
        v for k, v in _config_maps(docs).items() if re.fullmatch(r"sonobridge-reporting-\w+", k)
    )
    window = json.loads(config["app-config.js"].removeprefix("window.config = ").rstrip("; \n"))
    [source], [oidc] = window["dataSources"], window["oidc"]
    origin = oidc["redirect_uri"].removesuffix("/callback")
    # Generated by `sonobridge viewer-config`, so it is what the single node serves too.
    expected = app_config(
        source["configuration"]["qidoRoot"], origin, ViewerLogin(oidc["authority"])
    )
    assert config["app-config.js"] == expected
    assert (
        oidc["authority"] == common["AUTH__ISSUER"] == reporting["REPORTING__READING__ISSUER_URL"]
    )
    assert (oidc["client_id"], oidc["response_type"]) == ("ohif", "code")
    assert reporting["REPORTING__READING__VIEWER_URL"] == origin
    assert "try_files $uri /index.html" in config["nginx.conf"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_dashboards_are_provisioned_by_labelled_config_maps(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    dashboards = [
        d
        for d in find(rendered[overlay], "ConfigMap")
        if d["metadata"]["name"].startswith("sonobridge-dashboard")
    ]
    assert {d["metadata"]["name"] for d in dashboards} == {
        "sonobridge-dashboard-ops",
        "sonobridge-dashboard-consortium",
    }
    for config_map in dashboards:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        (content,) = config_map["data"].values()
        assert '"uid": "sonobridge-' in content


def test_strimzi_example_topics_match_the_topic_job(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["strimzi"]
    names = sorted(t["spec"]["topicName"] for t in find(docs, "KafkaTopic"))
    assert names == sorted(TOPICS + [f"{t}.dlq" for t in TOPICS])
    (kafka,) = find(docs, "Kafka")
    # The bootstrap Service Strimzi creates must be the one the ConfigMap points at.
    assert (
        f"{kafka['metadata']['name']}-kafka-bootstrap:9092"
        in (K8S / "base" / "common" / "kustomization.yaml").read_text()
    )
    assert kafka["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False


def test_minio_example_tenant_serves_the_configured_bucket(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    (tenant,) = find(rendered["minio-tenant"], "Tenant")
    assert tenant["spec"]["buckets"] == [{"name": "sonobridge"}]
    assert tenant["spec"]["requestAutoCert"] is False
    common = (K8S / "base" / "common" / "kustomization.yaml").read_text()
    assert "STORAGE__ENDPOINT=minio:80" in common and "STORAGE__BUCKET=sonobridge" in common


# A stand-in for kafka-topics.sh with the flags create-topics.sh uses, so the script itself runs
# against the real local broker (the local install ships the broker, not the CLI tools).
_KAFKA_TOPICS_CLI = """
import argparse, sys
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
p = argparse.ArgumentParser()
p.add_argument("--bootstrap-server", required=True)
p.add_argument("--create", action="store_true", required=True)
p.add_argument("--if-not-exists", action="store_true")
p.add_argument("--topic", required=True)
p.add_argument("--partitions", type=int, required=True)
p.add_argument("--replication-factor", type=int, required=True)
p.add_argument("--config", action="append", default=[])
a = p.parse_args()
configs = dict(item.split("=", 1) for item in a.config)
admin = KafkaAdminClient(bootstrap_servers=a.bootstrap_server)
try:
    topic = NewTopic(a.topic, a.partitions, a.replication_factor, topic_configs=configs)
    admin.create_topics([topic])
except TopicAlreadyExistsError:
    if not a.if_not_exists:
        raise
"""


@pytest.mark.infra
def test_topic_script_creates_every_topic_and_its_dead_letter_twin(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    import subprocess
    import sys
    import uuid

    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    prefix = f"t{uuid.uuid4().hex[:8]}"
    topics = [f"{prefix}.{name}" for name in TOPICS[:2]]
    (tmp_path / "topics.txt").write_text("# comment\n\n" + "\n".join(topics))
    cli = tmp_path / "kafka-topics.sh"
    cli.write_text(f'#!/bin/sh\nexec {sys.executable} {tmp_path / "cli.py"} "$@"\n')
    cli.chmod(0o755)
    (tmp_path / "cli.py").write_text(_KAFKA_TOPICS_CLI)
    env = {
        "PATH": "/usr/bin:/bin",
        "TOPICS_FILE": str(tmp_path / "topics.txt"),
        "KAFKA_TOPICS_BIN": str(cli),
        "KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TOPIC_PARTITIONS": "2",
        "TOPIC_REPLICATION_FACTOR": "1",
        "TOPIC_MIN_INSYNC_REPLICAS": "1",
        "TOPIC_RETENTION_MS": "604800000",
        "DLQ_RETENTION_MS": "2592000000",
    }
    script = K8S / "base" / "jobs" / "create-topics.sh"
    for _ in range(2):  # the second run finds everything in place and still succeeds
        done = subprocess.run(
            ["sh", str(script)], env=env, capture_output=True, text=True, timeout=180, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"ensured 4 topics on {kafka_bootstrap}" in done.stdout
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        wanted = [*topics, *(f"{t}.dlq" for t in topics)]
        assert set(wanted) <= set(admin.list_topics())
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in wanted]
        )
        # kafka-python 3: {"topic": {name: {config key: {"value": ...}}}}, modified keys only.
        by_topic = described["topic"]
        retention = {name: by_topic[name]["retention.ms"]["value"] for name in wanted}
        assert {retention[t] for t in topics} == {"604800000"}
        assert {retention[f"{t}.dlq"] for t in topics} == {"2592000000"}
    finally:
        admin.close()
