"""The production path on this machine: the image built with podman, run as the chart's
code-server Deployment; a production_daily partition queued on the chart's instance (real
PostgreSQL), handed by the QueuedRunCoordinator to the real K8sRunLauncher, whose Job is
recorded and then run with podman until the run reads back SUCCESS."""

from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url

from identity_data_tests.conftest import SAMPLE_DAYS
from identity_data_tests.deploy import chart, pods
from identity_data_tests.deploy.kube_recorder import KubeRecorder
from identity_data_tests.services import _default_signals, free_port

pytestmark = pytest.mark.slow
PARTITION = SAMPLE_DAYS[-1]
DATA_MOUNT = "/data"
# The Dagster instance gets its own database on the session's PostgreSQL.
INSTANCE_DB = "dagster_instance"
SECRETS_PG = {"dagster-postgresql-secret": {"postgresql-password": "trust-auth-ignores-it"}}


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    seconds = pods.build_image(tmp_path_factory.mktemp("build"))
    size = pods.podman("image", "inspect", "--format", "{{.Size}}", pods.IMAGE).stdout
    print(f"\nimage {pods.IMAGE}: built in {seconds:.0f} s, {int(size) / 1e9:.2f} GB")
    return pods.IMAGE


def _overlay(values: dict[str, Any], pg_port: int, grpc_port: int, kubeconfig: Path, data: Path):
    """This machine's facts over deploy/helm/values.yaml: local image, test PostgreSQL, the
    recorder instead of in-cluster config, the embedded lake on a hostPath volume."""
    values = copy.deepcopy(values)
    volume = [{"name": "data", "hostPath": {"path": str(data), "type": "Directory"}}]
    mount = [{"name": "data", "mountPath": DATA_MOUNT}]
    deployment = values["dagster-user-deployments"]["deployments"][0]
    deployment["image"].update(repository="localhost/identity-data", tag="test")
    deployment.update(port=grpc_port, volumes=volume, volumeMounts=mount)
    values["postgresql"].update(postgresqlUsername="postgres", postgresqlDatabase=INSTANCE_DB)
    values["postgresql"]["service"]["port"] = pg_port
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    launcher.update(loadInclusterConfig=False, kubeconfigFile=str(kubeconfig))
    launcher["runK8sConfig"]["podSpecConfig"]["volumes"] = volume
    launcher["runK8sConfig"]["containerConfig"]["volumeMounts"] = mount
    (settings,) = values["extraManifests"]
    settings["data"] = {"IDENTITY_DATA_ENV": "local", "IDENTITY_DATA_HOME": DATA_MOUNT}
    return values


@pytest.fixture
def recorder() -> Iterator[KubeRecorder]:
    kube = KubeRecorder()
    yield kube
    kube.close()


def _wait(what: str, check, timeout: float, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_partition_runs_through_k8s_run_launcher_to_success(
    image: str,
    postgres_url: str,
    recorder: KubeRecorder,
    sample_source: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = tmp_path / "data"
    shutil.copytree(sample_source, data)
    # The pods run as uid 10001, as on a cluster with fsGroup on a volume.
    subprocess.run(["chmod", "-R", "a+rwX", str(tmp_path)], check=True)
    pg_port = make_url(postgres_url).port
    engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f"DROP DATABASE IF EXISTS {INSTANCE_DB}"))
        connection.execute(sa.text(f"CREATE DATABASE {INSTANCE_DB}"))
    engine.dispose()
    grpc_port = free_port()
    kubeconfig = recorder.write_kubeconfig(tmp_path / "kubeconfig")
    chart_dir = chart.local_chart(tmp_path / "chart")
    values = _overlay(chart.load_values(), pg_port, grpc_port, kubeconfig, data)
    objects = chart.render(chart_dir, values)
    for document in objects:
        chart.validate(document)
    # As on the cluster, the pseudonym key reaches the pods only through the Secret.
    key = {"IDENTITY_DATA_PSEUDONYM_KEY": secrets.token_hex(32)}
    pod_secrets = {**SECRETS_PG, "identity-data-secrets": key}

    # The code server, as the chart's Deployment runs it.
    deployment = chart.find(objects, "Deployment", "dagster-dagster-user-deployments-identity-data")
    pod_spec = deployment["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    argv = pods.run_argv(pod_spec, objects, pod_secrets, tmp_path, "identity-data-code-server")
    probe = container["readinessProbe"]["exec"]["command"]
    started = time.monotonic()
    with pods.running_pod(argv, tmp_path / "code-server.log"):
        _wait(
            "the chart's readiness probe",
            lambda: (
                pods.podman("exec", "identity-data-code-server", *probe, check=False).returncode
                == 0
            ),
            timeout=180,
            interval=2,
        )
        readiness = time.monotonic() - started
        uid = pods.podman("exec", "identity-data-code-server", "id", "-u").stdout.strip()
        assert uid == "10001"
        print(f"\ncode server ready (grpc-health-check) after {readiness:.1f} s, uid {uid}")

        # The daemon's instance and workspace are the chart's; the Service name resolves to
        # the host here.
        home = tmp_path / "dagster_home"
        home.mkdir()
        instance_yaml = chart.find(objects, "ConfigMap", "dagster-instance")["data"]["dagster.yaml"]
        (home / "dagster.yaml").write_text(instance_yaml)
        workspace = yaml.safe_load(
            chart.find(objects, "ConfigMap", "dagster-workspace-yaml")["data"]["workspace.yaml"]
        )
        (server,) = workspace["load_from"]
        assert server["grpc_server"]["host"] == "identity-data"
        server["grpc_server"]["host"] = "127.0.0.1"
        (home / "workspace.yaml").write_text(yaml.safe_dump(workspace))
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_PASSWORD": "trust-auth-ignores-it",
        }
        queued_at = time.monotonic()
        launch = subprocess.run(
            [
                *(str(Path(sys.executable).parent / "dagster"), "job", "launch"),
                *("-w", str(home / "workspace.yaml"), "-j", "production_daily"),
                *("--tags", json.dumps({"dagster/partition": PARTITION})),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert launch.returncode == 0, launch.stdout + launch.stderr
        monkeypatch.setenv("DAGSTER_PG_PASSWORD", env["DAGSTER_PG_PASSWORD"])
        instance = dg.DagsterInstance.from_config(str(home))
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.QUEUED

        log = (tmp_path / "daemon.log").open("wb")
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run"],
            cwd=home,
            env=env,
            stdout=log,
            stderr=log,
            preexec_fn=_default_signals,
        )
        try:
            # The daemon also runs the sensors, which may queue runs of their own.
            job = _wait(
                "the K8sRunLauncher's Job",
                lambda: recorder.jobs.get(("dagster", f"dagster-run-{run.run_id}")),
                timeout=180,
            )
            _check_job(job)
            job_pod = job["spec"]["template"]["spec"]
            assert job_pod["containers"][0]["image"] == image
            job_argv = pods.run_argv(job_pod, objects, pod_secrets, tmp_path, "identity-data-run")
            result = pods.podman(*job_argv, check=False, timeout=600)
            assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
            status = _wait(
                "SUCCESS in PostgreSQL",
                lambda: (
                    instance.get_run_by_id(run.run_id).is_finished
                    and instance.get_run_by_id(run.run_id).status
                ),
                timeout=60,
            )
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
            log.close()
        assert status == dg.DagsterRunStatus.SUCCESS
        print(f"queued -> SUCCESS in {time.monotonic() - queued_at:.1f} s")

    _check_rows(data)


def _check_job(job: dict[str, Any]) -> None:
    """What the run launcher asked Kubernetes for: a valid Job with the run pod's own resources,
    identity, security context, settings and secret references."""
    assert chart.validate(job) == "1.37"
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["memory"] == "4Gi"
    assert container["resources"]["requests"]["cpu"] == "1"
    assert pod["serviceAccountName"] == "identity-data"
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert job["spec"]["backoffLimit"] == 0
    assert container["args"][:3] == ["dagster", "api", "execute_run"]
    refs = {next(iter(source.values()))["name"] for source in container["envFrom"]}
    assert {"identity-data-settings", "identity-data-secrets"} <= refs
    env = {item["name"]: item for item in container["env"]}
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "dagster-postgresql-secret",
        "key": "postgresql-password",
    }
    assert job["metadata"]["labels"]["dagster/job"] == "production_daily"


def _check_rows(data: Path) -> None:
    """Rows in = rows out + rows quarantined, in the raw zone the run wrote."""
    with sqlite3.connect(data / "capture_db.sqlite") as db:
        (expected,) = db.execute(
            "SELECT count(*) FROM captures WHERE substr(captured_at, 1, 10) = ?", (PARTITION,)
        ).fetchone()
    tables = data / "lake" / "tables" / "raw"
    written = {
        name: pl.scan_parquet(next((tables / name).rglob(f"{PARTITION}*.parquet")))
        .select(pl.len())
        .collect()
        .item()
        for name in ("production_captures", "production_quarantine")
    }
    assert expected > 0
    assert written["production_captures"] > 0
    assert sum(written.values()) == expected
