"""Structure of the deployment files: the Kubernetes manifests agree with the settings, the image and
the worker's endpoints; the Grafana dashboard and the compose services use what exists."""

from __future__ import annotations

import json
import re

import yaml

from streamproc.settings import SPEC, Settings
from tests.conftest import ROOT
from tests.ops.metric_names import unexported

K8S = ROOT / "ops" / "k8s"


def _manifests() -> dict[str, dict]:
    docs = {}
    for name in yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]:
        doc = yaml.safe_load((K8S / name).read_text())
        docs[doc["kind"]] = doc
    return docs


def test_the_configmap_is_a_valid_configuration_without_credentials() -> None:
    data = _manifests()["ConfigMap"]["data"]
    known = {var for var, *_ in SPEC.values()}
    assert set(data) <= known, f"unknown settings: {set(data) - known}"
    assert "REDIS_URL" not in data, "credentials belong in the Secret"
    Settings.from_env(data)  # raises SettingsError naming the variable if a value is wrong
    assert data["STREAMPROC_WEB_HOST"] == "0.0.0.0", "probes reach the pod's IP, not its loopback"


def test_the_deployment_probes_the_worker_endpoints_on_its_web_port() -> None:
    docs = _manifests()
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (port,) = container["ports"]
    assert port["containerPort"] == int(docs["ConfigMap"]["data"]["STREAMPROC_WEB_PORT"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": port["name"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": port["name"]}
    assert container["envFrom"] == [{"configMapRef": {"name": docs["ConfigMap"]["metadata"]["name"]}}]
    refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"]]
    assert refs == [{"name": "streamproc-credentials", "key": "REDIS_URL"}]
    uid = re.search(r"--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert uid and pod["securityContext"]["runAsUser"] == int(uid.group(1))
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    assert secret["metadata"]["name"] == "streamproc-credentials" and "REDIS_URL" in secret["stringData"]


def test_the_disruption_budget_covers_the_workers() -> None:
    docs = _manifests()
    selector = docs["Deployment"]["spec"]["selector"]
    assert docs["PodDisruptionBudget"]["spec"]["selector"] == selector
    assert docs["Deployment"]["spec"]["template"]["metadata"]["labels"] == selector["matchLabels"]
    assert docs["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


def test_the_dashboard_has_the_on_call_panels_over_exported_metrics() -> None:
    dash = json.loads((ROOT / "ops/grafana/dashboards/streamproc.json").read_text())
    assert dash["uid"] == "streamproc-overview"  # stable: links and alerts point at it
    titles = " | ".join(p["title"] for p in dash["panels"]).lower()
    for needed in ("records / s", "lag", "latency", "orders", "alerts", "suppressed"):
        assert needed in titles, f"no panel for {needed}"
    source = yaml.safe_load((ROOT / "ops/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == uid
        for target in panel["targets"]:
            assert unexported(target["expr"]) == [], f"{panel['title']} queries unexported metrics"


def test_compose_mounts_the_files_prometheus_and_grafana_need() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in ("prometheus", "grafana"):
        for volume in compose["services"][service]["volumes"]:
            source = volume.split(":")[0]
            assert (ROOT / source).exists(), f"{service} mounts {source}, which does not exist"
    provider = yaml.safe_load((ROOT / "ops/grafana/provisioning/dashboards/streamproc.yml").read_text())
    dashboards = provider["providers"][0]["options"]["path"]
    assert any(v.endswith(f":{dashboards}:ro") for v in compose["services"]["grafana"]["volumes"])
    scrape = yaml.safe_load((ROOT / "ops/prometheus/prometheus.yml").read_text())
    port = scrape["scrape_configs"][0]["dns_sd_configs"][0]["port"]
    assert compose["services"]["worker"]["environment"]["STREAMPROC_WEB_HOST"] == "0.0.0.0"
    assert port == int(SPEC["web_port"][1])


def test_the_state_dir_is_writable_outside_the_images_working_directory() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    workdir = re.search(r"^WORKDIR (\S+)", dockerfile, flags=re.M)
    state = re.search(r"STREAMPROC_STATE_DIR=(\S+)", dockerfile)
    assert workdir and state, "the image sets STREAMPROC_STATE_DIR (Faust's data directory goes there)"
    assert not state.group(1).startswith(workdir.group(1)), "the working directory is root-owned"
    assert re.search(rf"install -d -o streamproc .*{re.escape(state.group(1))}", dockerfile)
    pod = _manifests()["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert state.group(1) in mounts, "the Deployment mounts a writable volume at STREAMPROC_STATE_DIR"
    (volume,) = [v for v in pod["volumes"] if v["name"] == mounts[state.group(1)]]
    assert "emptyDir" in volume, "writable whatever uid the pod runs as; nothing in it is kept"


def test_the_pod_monitor_gives_the_job_label_the_rules_select_on() -> None:
    monitor = yaml.safe_load((K8S / "podmonitor.yaml").read_text())
    deployment = _manifests()["Deployment"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert (
        monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"
        and labels["app.kubernetes.io/name"] == "streamproc"
    )
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} <= ports
    rules = (ROOT / "ops" / "prometheus" / "rules.yml").read_text()
    assert 'up{job="streamproc"}' in rules and "absent(" in rules
