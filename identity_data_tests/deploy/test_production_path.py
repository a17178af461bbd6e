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

from identity_data.fanout import DETECTOR_RESOURCES, FANOUT, KUBERNETES, ORCHESTRATOR_RESOURCES
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
_RUN_K8S = chart.load_values()["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
# Run pods: runK8sConfig, not the code server's 2Gi (includeConfigInLaunchedRuns is off).
RUN_POD_RESOURCES = _RUN_K8S["containerConfig"]["resources"]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    seconds = pods.build_image(tmp_path_factory.mktemp("build"))
    size = pods.podman("image", "inspect", "--format", "{{.Size}}", pods.IMAGE).stdout
    print(f"\nimage {pods.IMAGE}: built in {seconds:.0f} s, {int(size) / 1e9:.2f} GB", flush=True)
    print(pods.size_report(pods.IMAGE), flush=True)
    return pods.IMAGE


def _overlay(values: dict[str, Any], pg_port: int, grpc_port: int, kubeconfig: Path, data: Path):
    """This machine's facts over deploy/helm/values.yaml: local image, test PostgreSQL, the
    recorder instead of in-cluster config (mounted where run pods' executors read it), the
    embedded lake on a hostPath volume, and the cluster's fan-out over those local stores."""
    values = copy.deepcopy(values)
    volume = [{"name": "data", "hostPath": {"path": str(data), "type": "Directory"}}]
    mount = [{"name": "data", "mountPath": DATA_MOUNT}]
    kube = {"name": "kube", "hostPath": {"path": str(kubeconfig.parent), "type": "Directory"}}
    kube_mount = {"name": "kube", "mountPath": str(kubeconfig.parent), "readOnly": True}
    deployment = values["dagster-user-deployments"]["deployments"][0]
    deployment["image"].update(repository="localhost/identity-data", tag="test")
    deployment.update(port=grpc_port, volumes=volume, volumeMounts=mount)
    values["postgresql"].update(postgresqlUsername="postgres", postgresqlDatabase=INSTANCE_DB)
    values["postgresql"]["service"]["port"] = pg_port
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    launcher.update(loadInclusterConfig=False, kubeconfigFile=str(kubeconfig))
    launcher["runK8sConfig"]["podSpecConfig"]["volumes"] = [*volume, kube]
    launcher["runK8sConfig"]["containerConfig"]["volumeMounts"] = [*mount, kube_mount]
    (settings,) = [m for m in values["extraManifests"] if m["kind"] == "ConfigMap"]
    settings["data"] = {
        "IDENTITY_DATA_ENV": "local",
        "IDENTITY_DATA_HOME": DATA_MOUNT,
        FANOUT: KUBERNETES,
    }
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


# Image build, code server, two runs and a step pod: 13-19 minutes measured here under a load
# average of 10-16 on 2 cores; less on a CI machine of its own.
@pytest.mark.timeout(1800)
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
    (tmp_path / "kube").mkdir()
    kubeconfig = recorder.write_kubeconfig(tmp_path / "kube" / "config")
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
    startup = container["startupProbe"]
    probe = startup["exec"]["command"]
    assert container["readinessProbe"]["exec"]["command"] == probe
    started = time.monotonic()
    with pods.running_pod(argv, tmp_path / "code-server.log"):
        # The kubelet's budget before it would restart the container.
        _wait(
            "the chart's startup probe",
            lambda: (
                pods.podman("exec", "identity-data-code-server", *probe, check=False).returncode
                == 0
            ),
            timeout=startup["failureThreshold"] * startup["periodSeconds"],
            interval=2,
        )
        readiness = time.monotonic() - started
        uid = pods.podman("exec", "identity-data-code-server", "id", "-u").stdout.strip()
        assert uid == "10001"
        print(
            f"\ncode server ready (grpc-health-check) after {readiness:.1f} s, uid {uid}",
            flush=True,
        )

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
        # Queued before the daemon starts, so the one-run-per-partition limit hands them out in
        # this order, ahead of anything the automation sensor queues for the same day.
        daily = _launch(home, env, "production_daily")
        annotation = _launch(home, env, "production_annotation")
        monkeypatch.setenv("DAGSTER_PG_PASSWORD", env["DAGSTER_PG_PASSWORD"])
        instance = dg.DagsterInstance.from_config(str(home))
        runs = {run.job_name: run for run in instance.get_runs()}
        assert {runs[daily].status, runs[annotation].status} == {dg.DagsterRunStatus.QUEUED}

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
            # The run pod of production_daily: every step in-process, runK8sConfig's resources.
            job = _wait_job(recorder, runs[daily].run_id)
            _check_job(job, "production_daily", RUN_POD_RESOURCES)
            # Not the code server's own (smaller) resources: its container context stays out.
            assert (
                job["spec"]["template"]["spec"]["containers"][0]["resources"]
                != (container["resources"])
            )
            _run_pod(job, objects, pod_secrets, tmp_path, "identity-data-run", image)
            status = _wait_finished(instance, runs[daily].run_id)
            assert status == dg.DagsterRunStatus.SUCCESS
            print(f"\nqueued -> SUCCESS in {time.monotonic() - queued_at:.1f} s", flush=True)
            _check_rows(data)

            # production_annotation: its run pod only orchestrates (the job's tags), the
            # k8s_job_executor in it creates the detector's step Job (the asset's op tags).
            job = _wait_job(recorder, runs[annotation].run_id)
            launched_at = time.monotonic()
            _check_job(job, "production_annotation", ORCHESTRATOR_RESOURCES)
            orchestrator = subprocess.Popen(
                ["podman", *_pod_argv(job, objects, pod_secrets, tmp_path, "identity-data-orch")],
                env=pods.podman_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:
                step = _wait(
                    "the k8s_job_executor's step Job",
                    lambda: next(
                        (
                            j
                            for (_, name), j in sorted(recorder.jobs.items())
                            if name.startswith("dagster-step-")
                        ),
                        None,
                    ),
                    timeout=300,
                )
                _check_step_job(step, runs[annotation].run_id)
                _run_pod(step, objects, pod_secrets, tmp_path, "identity-data-step", image)
                out, _ = orchestrator.communicate(timeout=300)
                assert orchestrator.returncode == 0, out[-4000:]
            finally:
                if orchestrator.poll() is None:
                    pods.podman("rm", "--force", "--time", "5", "identity-data-orch", check=False)
                    orchestrator.wait(timeout=60)
            status = _wait_finished(instance, runs[annotation].run_id)
            assert status == dg.DagsterRunStatus.SUCCESS
            seconds = time.monotonic() - launched_at
            print(f"annotation run pod + step pod -> SUCCESS in {seconds:.1f} s", flush=True)
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
            log.close()

    _check_annotations(data)


def _launch(home: Path, env: dict[str, str], job: str) -> str:
    launch = subprocess.run(
        [
            *(str(Path(sys.executable).parent / "dagster"), "job", "launch"),
            *("-w", str(home / "workspace.yaml"), "-j", job),
            *("--tags", json.dumps({"dagster/partition": PARTITION})),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert launch.returncode == 0, launch.stdout + launch.stderr
    return job


def _wait_job(recorder: KubeRecorder, run_id: str) -> dict[str, Any]:
    # The daemon also runs the sensors, which may queue runs of their own.
    return _wait(
        "the K8sRunLauncher's Job",
        lambda: recorder.jobs.get(("dagster", f"dagster-run-{run_id}")),
        timeout=180,
    )


def _wait_finished(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    def finished():
        run = instance.get_run_by_id(run_id)
        return run is not None and run.is_finished and run.status

    return _wait("the run's end in PostgreSQL", finished, timeout=60)


def _pod_argv(job, objects, pod_secrets, workdir: Path, name: str) -> list[str]:
    return pods.run_argv(job["spec"]["template"]["spec"], objects, pod_secrets, workdir, name)


def _run_pod(job, objects, pod_secrets, workdir: Path, name: str, image: str) -> None:
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == image
    result = pods.podman(*_pod_argv(job, objects, pod_secrets, workdir, name), check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def _check_job(job: dict[str, Any], job_name: str, resources: dict[str, Any]) -> None:
    """What the run launcher asked Kubernetes for: the run pod."""
    container = chart.check_pod(job, resources)
    assert container["args"][:3] == ["dagster", "api", "execute_run"]
    assert job["metadata"]["labels"]["dagster/job"] == job_name


def _check_step_job(job: dict[str, Any], run_id: str) -> None:
    """What the k8s_job_executor asked for: the detector's step pod, with the annotation
    asset's dagster-k8s/config resources over the run launcher's settings."""
    container = chart.check_pod(job, DETECTOR_RESOURCES)
    assert container["args"][:3] == ["dagster", "api", "execute_step"]
    labels = job["metadata"]["labels"]
    assert labels["dagster/run-id"] == run_id
    assert labels["dagster/op"] == "annotations__prod_annotations"


def _check_annotations(data: Path) -> None:
    """The step pod annotated every capture of the partition's manifest."""
    tables = data / "lake" / "tables"

    def rows(layer: str, name: str) -> int:
        path = next((tables / layer / name).rglob(f"{PARTITION}*.parquet"))
        return pl.scan_parquet(path).select(pl.len()).collect().item()

    assert rows("annotations", "prod_annotations") == rows("raw", "prod_captures")


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
        for name in ("prod_captures", "prod_quarantine")
    }
    assert expected > 0
    assert written["prod_captures"] > 0
    assert sum(written.values()) == expected
