"""deploy/helm/values.yaml through the official chart: Helm's schema check and renderer, then
every object through kubernetes-validate --strict; the chart's run launcher against the Kubernetes
API recorder."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from helm_python.errors import HelmError

from identity_data.dagster_private import launch_asset_job_run
from identity_data.defs.automation import ANNOTATION_SENSOR, AUTOMATION_SENSOR
from identity_data.fanout import DETECTOR_RESOURCES, FANOUT, KUBERNETES
from identity_data_tests import probe
from identity_data_tests.deploy import chart
from identity_data_tests.deploy.kube_recorder import KubeRecorder
from identity_data_tests.deploy.pods import IMAGE


@pytest.fixture(scope="module")
def chart_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return chart.local_chart(tmp_path_factory.mktemp("chart"))


@pytest.fixture(scope="module")
def objects(chart_dir: Path) -> list[dict[str, Any]]:
    return chart.render(chart_dir, chart.load_values())


def _instance(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return yaml.safe_load(
        chart.find(objects, "ConfigMap", "dagster-instance")["data"]["dagster.yaml"]
    )


def test_every_rendered_object_is_valid_kubernetes(objects: list[dict[str, Any]]) -> None:
    versions = {chart.validate(document) for document in objects}
    assert versions == {"1.37"}
    print(f"\n{len(objects)} rendered objects valid for Kubernetes {chart.KUBERNETES_VERSION}")
    kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)
    assert "Deployment/dagster-dagster-user-deployments-identity-data" in kinds
    assert "Deployment/dagster-daemon" in kinds
    assert "ConfigMap/identity-data-settings" in kinds
    # No bundled PostgreSQL, no generated password Secret: Cloud SQL and an external Secret.
    assert not [k for k in kinds if k.startswith(("StatefulSet/", "Secret/"))]


def test_instance_is_postgres_k8s_with_retries_monitoring_and_limits(
    objects: list[dict[str, Any]],
) -> None:
    instance = _instance(objects)
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        db = instance[storage]["config"]["postgres_db"]
        assert instance[storage]["module"].startswith("dagster_postgres")
        assert db["scheme"] == "postgresql+psycopg2"
        assert db["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    launcher = instance["run_launcher"]
    assert launcher["class"] == "K8sRunLauncher"
    run_config = launcher["config"]["run_k8s_config"]
    assert run_config["container_config"]["resources"]["limits"]["memory"] == "4Gi"
    assert run_config["pod_spec_config"]["serviceAccountName"] == "identity-data"
    assert run_config["pod_spec_config"]["securityContext"]["runAsUser"] == 10001
    assert launcher["config"]["env_config_maps"] == ["identity-data-settings"]
    assert launcher["config"]["env_secrets"] == ["identity-data-secrets"]
    coordinator = instance["run_coordinator"]["config"]
    assert coordinator["max_concurrent_runs"] == 4
    assert {limit["key"] for limit in coordinator["tag_concurrency_limits"]} == {
        "dagster/backfill",
        "dagster/partition",
    }
    assert instance["run_retries"] == {
        "enabled": True,
        "max_retries": 2,
        "retry_on_asset_or_op_failure": False,
    }
    assert instance["run_monitoring"]["enabled"] is True


def test_code_server_serves_the_project_as_uid_10001(objects: list[dict[str, Any]]) -> None:
    deployment = chart.find(objects, "Deployment", "dagster-dagster-user-deployments-identity-data")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][-4:] == [
        "--module-name",
        "identity_data.definitions",
        "--attribute",
        "defs",
    ]
    health_check = ["dagster", "api", "grpc-health-check", "-p", "4000"]
    assert container["readinessProbe"]["exec"]["command"] == health_check
    # Loading the definitions took 58-87 s here: the startup probe allows 5 minutes before a
    # restart, and readiness (3 x 20 s) only counts after it.
    startup = container["startupProbe"]
    assert startup["exec"]["command"] == health_check
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 300
    assert startup["timeoutSeconds"] >= 10
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["runAsUser"] == 10001
    refs = [next(iter(source.values()))["name"] for source in container["envFrom"]]
    assert {"identity-data-settings", "identity-data-secrets"} <= set(refs)
    env = {item["name"]: item for item in container["env"]}
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == (
        "dagster-postgresql-secret"
    )
    # The code server's container context would override runK8sConfig in launched runs.
    assert "DAGSTER_CLI_API_GRPC_CONTAINER_CONTEXT" not in env


def test_run_pods_may_create_step_jobs_and_nothing_else(objects: list[dict[str, Any]]) -> None:
    binding = chart.find(objects, "RoleBinding", "identity-data-step-jobs")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "identity-data", "namespace": chart.NAMESPACE}
    ]
    role = chart.find(objects, "Role", binding["roleRef"]["name"])
    grants = {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    assert ("jobs", "create") in grants
    assert {r for r, _ in grants} == {"jobs", "jobs/status", "pods", "pods/log"}
    assert not {v for r, v in grants if r.startswith("pods")} - {"get", "list"}


def test_settings_config_map_holds_no_secret(objects: list[dict[str, Any]]) -> None:
    data = chart.find(objects, "ConfigMap", "identity-data-settings")["data"]
    assert data["IDENTITY_DATA_ENV"] == "prod"
    assert not {"IDENTITY_DATA_PSEUDONYM_KEY", "IDENTITY_DATA_CAPTURE_DB_URL"} & set(data)
    literal = [
        item["name"]
        for document in objects
        if document["kind"] == "Deployment"
        for container in document["spec"]["template"]["spec"]["containers"]
        for item in container.get("env") or []
        if "PASSWORD" in item["name"] and "value" in item
    ]
    assert literal == []


def _broken(change: str) -> dict[str, Any]:
    values = copy.deepcopy(chart.load_values())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    if change == "launcher type typo":
        values["runLauncher"]["type"] = "K8sRunLaucher"
    elif change == "missing image":
        del deployment["image"]
    elif change == "port as a string":
        deployment["port"] = "4000"
    return values


@pytest.mark.parametrize(
    "change",
    ["launcher type typo", "missing image", "port as a string"],
)
def test_broken_values_are_rejected(chart_dir: Path, change: str) -> None:
    with pytest.raises(HelmError):
        chart.render(chart_dir, _broken(change))


@pytest.fixture
def recorder() -> Iterator[KubeRecorder]:
    kube = KubeRecorder()
    yield kube
    kube.close()


def test_automation_runs_get_their_pods_from_the_run_launcher(
    objects: list[dict[str, Any]], recorder: KubeRecorder, tmp_path: Path
) -> None:
    """The daemon's annotation runs: the chart's real K8sRunLauncher, given a run with the
    annotation sensor's tags, asks for a run pod with the detector's resources; every other
    automation run gets runK8sConfig's."""
    launcher = _instance(objects)["run_launcher"]
    launcher["config"].update(
        load_incluster_config=False,
        kubeconfig_file=str(recorder.write_kubeconfig(tmp_path / "kubeconfig")),
    )
    run_pod = launcher["config"]["run_k8s_config"]["container_config"]["resources"]
    expected = {ANNOTATION_SENSOR: DETECTOR_RESOURCES, AUTOMATION_SENSOR: run_pod}
    assert run_pod != DETECTOR_RESOURCES
    # As the cluster's code server defines them: a fresh process with the Kubernetes fan-out.
    tags = probe.load({FANOUT: KUBERNETES})["automation"]
    assert set(tags) == set(expected)
    with dg.instance_for_test(overrides={"run_launcher": launcher}) as instance:
        for sensor, resources in expected.items():
            run = launch_asset_job_run(
                instance,
                "identity_data.definitions",
                "defs",
                IMAGE,
                {**tags[sensor], "dagster/partition": "2026-11-28"},
            )
            job = recorder.jobs[(chart.NAMESPACE, f"dagster-run-{run.run_id}")]
            container = chart.check_pod(job, resources)
            assert container["image"] == IMAGE
            assert container["args"][-4:-1] == ["dagster", "api", "execute_run"]
