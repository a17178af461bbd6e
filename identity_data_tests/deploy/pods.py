"""Runs a Kubernetes pod spec with podman, as a kubelet would run it: same image, command,
env (literal, from ConfigMaps and Secrets), volumes and user. `.ci/podman.sh` prepares podman."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from identity_data_tests.services import REPO, SERVICES, _missing

PODMAN_ROOT = SERVICES / "podman"
BASE_IMAGE = "localhost/identity-data-base:bookworm-py311"
IMAGE = "localhost/identity-data:test"


def podman_env() -> dict[str, str]:
    if not (PODMAN_ROOT / "base.recipe").is_file():
        _missing("podman with the mmdebstrap base image (.ci/podman.sh)")
    return {
        **os.environ,
        "CONTAINERS_CONF": str(PODMAN_ROOT / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(PODMAN_ROOT / "storage.conf"),
    }


def podman(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["podman", *args],
        env=podman_env(),
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


def build_image(workdir: Path) -> float:
    """Builds the unchanged Dockerfile on the local base; returns the seconds it took.

    PyPI is reached through a TLS-intercepting proxy here: the host CA bundle and a uv config
    that trusts it are bind-mounted for the build only, never copied into a layer."""
    uv_config = workdir / "uv.toml"
    uv_config.write_text("system-certs = true\n")
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    start = time.monotonic()
    build = subprocess.run(
        [
            *("podman", "build", "--network", "host", "--from", BASE_IMAGE, "-t", IMAGE),
            *("-v", f"{bundle}:{bundle}:ro", "-v", f"{uv_config}:/etc/uv/uv.toml:ro", str(REPO)),
        ],
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return time.monotonic() - start


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found[0] if found else None


def pod_environment(
    container: dict[str, Any], objects: list[dict[str, Any]], secrets: dict[str, dict[str, str]]
) -> dict[str, str]:
    """The container's environment as a kubelet resolves it: envFrom first, then env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            ref = source["configMapRef"]
            config_map = _find(objects, "ConfigMap", ref["name"])
            data = None if config_map is None else config_map.get("data") or {}
        else:
            ref = source["secretRef"]
            data = secrets.get(ref["name"])
        if data is None:
            assert ref.get("optional"), f"pod refers to missing {ref['name']}"
            continue
        env.update(data)
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def run_argv(
    pod_spec: dict[str, Any],
    objects: list[dict[str, Any]],
    secrets: dict[str, dict[str, str]],
    workdir: Path,
    name: str,
) -> list[str]:
    """`podman run` arguments for the pod's only container (host network: the test's services
    listen on 127.0.0.1, as the Cloud SQL proxy sidecar would)."""
    (container,) = pod_spec["containers"]
    security = {**(pod_spec.get("securityContext") or {})}
    security.update(container.get("securityContext") or {})
    user = security.get("runAsUser")
    assert user not in (None, 0) or not security.get("runAsNonRoot"), "runAsNonRoot needs a uid"
    argv = ["run", "--rm", "--name", name, "--network", "host"]
    if user is not None:
        argv += ["--user", f"{user}:{security.get('runAsGroup', user)}"]
    if "ALL" in (security.get("capabilities") or {}).get("drop", []):
        argv += ["--cap-drop", "ALL"]
    if security.get("allowPrivilegeEscalation") is False:
        argv += ["--security-opt", "no-new-privileges"]
    volumes = {volume["name"]: volume for volume in pod_spec.get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            config_map = _find(objects, "ConfigMap", volume["configMap"]["name"])
            assert config_map is not None, f"missing ConfigMap {volume['configMap']['name']}"
            source = workdir / f"{name}-{mount['name']}"
            source.mkdir(parents=True, exist_ok=True)
            for key, text in (config_map.get("data") or {}).items():
                (source / key).write_text(text)
                (source / key).chmod(0o644)
            source.chmod(0o755)
        else:
            source = Path(volume["hostPath"]["path"])
        argv += ["-v", f"{source}:{mount['mountPath']}:{'ro' if mount.get('readOnly') else 'rw'}"]
    for key, value in pod_environment(container, objects, secrets).items():
        argv += ["--env", f"{key}={value}"]
    command = [*(container.get("command") or []), *(container.get("args") or [])]
    if container.get("command"):
        argv += ["--entrypoint", command[0]]
        command = command[1:]
    return [*argv, container["image"], *command]


@contextlib.contextmanager
def running_pod(argv: list[str], log: Path) -> Iterator[subprocess.Popen]:
    """A long-running pod (the code server), removed by name at exit."""
    name = argv[argv.index("--name") + 1]
    with log.open("wb") as out:
        proc = subprocess.Popen(["podman", *argv], env=podman_env(), stdout=out, stderr=out)
    try:
        yield proc
    finally:
        podman("rm", "--force", "--time", "5", name, check=False)
        proc.wait(timeout=60)


# Where the image's size goes: the largest installed distributions' folders, in MB.
SIZE_REPORT = (
    'cd "$(python3 -c "import sysconfig; print(sysconfig.get_paths()[\'purelib\'])")"'
    " && du -sm . && du -sm * | sort -rn | head -15"
)


def size_report(image: str) -> str:
    return podman("run", "--rm", "--entrypoint", "sh", image, "-c", SIZE_REPORT).stdout
