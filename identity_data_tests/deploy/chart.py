"""The official Dagster Helm chart rendered with Helm's own engine (helm-python-sdk), offline."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from helm_python import chart as helm

from identity_data_tests.services import REPO, _missing

VALUES = REPO / "deploy" / "helm" / "values.yaml"
# The newest Kubernetes release whose schemas kubernetes-validate ships.
KUBERNETES_VERSION = "1.37.0"
RELEASE, NAMESPACE = "dagster", "dagster"
_REMOTE_DEFINITIONS = (
    "https://raw.githubusercontent.com/yannh/kubernetes-json-schema/master/v1.19.0/"
    "_definitions.json#/definitions/"
)


def chart_source() -> Path:
    """The chart copy: $IDENTITY_DATA_DAGSTER_CHART, else `shared/dagster-chart` beside the
    checkout (or beside its worktree folder)."""
    candidates = [Path(os.environ.get("IDENTITY_DATA_DAGSTER_CHART", "/nonexistent"))]
    candidates += [parent / "shared" / "dagster-chart" for parent in REPO.parents[:2]]
    for candidate in candidates:
        if (candidate / "Chart.yaml").is_file():
            return candidate
    _missing("the official Dagster chart copy (../shared/dagster-chart)")


def local_chart(workdir: Path) -> Path:
    """A writable copy of the chart whose values schemas point at kubernetes-validate's local
    Kubernetes definitions instead of GitHub (the copy in CI is read-only, and offline)."""
    schemas = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    definitions = schemas / f"v{KUBERNETES_VERSION}-local" / "_definitions.json"
    target = workdir / "dagster"
    shutil.copytree(chart_source(), target, copy_function=shutil.copyfile)
    for path in target.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    for schema in target.rglob("values.schema.json"):
        # Those definitions are JSON Schema 2020-12: `$defs`, not draft-4 `definitions`.
        text = schema.read_text().replace(_REMOTE_DEFINITIONS, f"{definitions.as_uri()}#/$defs/")
        schema.write_text(text)
    return target


def load_values(path: Path = VALUES) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def render(chart_dir: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    """Schema-check `values` and render every object the chart would install."""
    with helm.Chart.load(chart_dir) as chart:
        chart.validate_schema(values)
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return [
        document
        for template, text in sorted(manifests.items())
        if template.endswith((".yaml", ".yml"))
        for document in yaml.safe_load_all(text)
        if document
    ]


def validate(document: dict[str, Any]) -> str:
    """kubernetes-validate --strict: unknown fields are errors. Returns the version used."""
    return kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (match,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return match


def check_pod(job: dict[str, Any], resources: dict[str, Any]) -> dict[str, Any]:
    """A valid Job whose pod has `resources`, the pipeline's identity, security context,
    settings and secret references."""
    assert validate(job) == "1.37"
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"] == resources
    assert pod["serviceAccountName"] == "identity-data"
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert job["spec"]["backoffLimit"] == 0
    refs = {next(iter(source.values()))["name"] for source in container["envFrom"]}
    assert {"identity-data-settings", "identity-data-secrets"} <= refs
    env = {item["name"]: item for item in container["env"]}
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "dagster-postgresql-secret",
        "key": "postgresql-password",
    }
    return container
