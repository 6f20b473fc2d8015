"""Dashboards, rules and alerts as code: generated files match their generator, every
rule file passes `promtool check rules`, every alert has a unit test that fires and one that stays
silent (`promtool test rules`), a severity Alertmanager routes, a summary and a runbook that exists;
the kustomize component ships every dashboard as a ConfigMap Grafana's sidecar picks up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "infra" / "observability"
RULES = OBSERVABILITY / "prometheus" / "rules"
TESTS = OBSERVABILITY / "prometheus" / "tests"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None and not os.environ.get("CI"),
                                    reason="promtool (Debian's prometheus package; .ci/run installs it)")


def alerts() -> list[dict]:
    return [rule for path in sorted(RULES.glob("*.yml")) for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if "alert" in rule]


def test_generated_files_are_committed_as_generated() -> None:
    result = subprocess.run([sys.executable, str(OBSERVABILITY / "generate.py"), "--check"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@needs_promtool
def test_promtool_checks_and_unit_tests_pass() -> None:
    check = subprocess.run([PROMTOOL or "promtool", "check", "rules", *map(str, sorted(RULES.glob("*.yml")))],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    tested = subprocess.run([PROMTOOL or "promtool", "test", "rules", *map(str, sorted(TESTS.glob("*.yml")))],
                            capture_output=True, text=True, check=False, cwd=TESTS)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_is_routed_documented_and_unit_tested() -> None:
    routes = yaml.safe_load((OBSERVABILITY / "alertmanager" / "alertmanager.yml").read_text())["route"]["routes"]
    routed = {matcher.split("=")[1].strip('"') for route in routes for matcher in route["matchers"]}
    cases = [case for path in TESTS.glob("*.yml") for test in yaml.safe_load(path.read_text())["tests"]
             for case in test.get("alert_rule_test", [])]
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names)) and len(names) >= 15
    for rule in alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in routed, name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["runbook_url"] == f"docs/runbooks/{name}.md"
        runbook = (ROOT / "docs" / "runbooks" / f"{name}.md").read_text()
        assert "```promql" in runbook and ("python -m" in runbook or "kubectl" in runbook), name
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name}: no unit test where it fires"
        assert any(not case["exp_alerts"] for case in mine), f"{name}: no unit test where it stays silent"


def test_dashboards_use_the_provisioned_datasource_and_template_variables() -> None:
    provisioned = yaml.safe_load(
        (ROOT / "infra/compose/grafana/provisioning/datasources/prometheus.yaml").read_text())["datasources"][0]
    boards = {p.name: json.loads(p.read_text()) for p in (OBSERVABILITY / "dashboards").glob("*.json")}
    assert {"overview.json", "events.json", "infrastructure.json"} <= boards.keys()
    assert {f"service-{s}.json" for s in ("auth", "catalog", "billing", "playback")} <= boards.keys()
    assert len({board["uid"] for board in boards.values()}) == len(boards)
    for name, board in boards.items():
        assert [v["name"] for v in board["templating"]["list"]][:2] == ["namespace", "instance"], name
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                assert target["datasource"]["uid"] == provisioned["uid"], (name, panel["title"])


def test_kustomize_component_ships_every_dashboard_to_grafanas_sidecar(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    overlay = ROOT / "k8s" / f".observability-{os.getpid()}"
    overlay.mkdir()
    try:
        (overlay / "kustomization.yaml").write_text(
            "resources: [../overlays/dev]\ncomponents: [../../infra/observability]\n")
        rendered = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=True)
    finally:
        shutil.rmtree(overlay)
    documents = list(yaml.safe_load_all(rendered.stdout))
    sidecar = [doc for doc in documents if doc["kind"] == "ConfigMap"
               and doc["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    shipped = {key: value for doc in sidecar for key, value in doc["data"].items()}
    for path in (OBSERVABILITY / "dashboards").glob("*.json"):
        assert shipped[path.name] == path.read_text(), path.name
    kinds = {doc["kind"] for doc in documents}
    assert {"PrometheusRule", "PodMonitor"} <= kinds
    monitor = next(doc for doc in documents if doc["kind"] == "PodMonitor")
    assert all(endpoint["honorLabels"] for endpoint in monitor["spec"]["podMetricsEndpoints"])
