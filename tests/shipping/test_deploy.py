"""Kubernetes manifests (kubernetes-validate, strict: unknown fields fail) and systemd units
(`systemd-analyze verify`, and `security` for the sandboxing) against the code they run."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import ValidationError

from cronicorn.config import Settings
from shipping.shipping_support import ROOT

K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.30.0"
ALIASES = {f.alias for f in Settings.model_fields.values() if f.alias}
ROLES = {"cronicorn-api": "api", "cronicorn-scheduler": "scheduler", "cronicorn-planner": "planner"}


def _files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def _docs(paths: list[Path]) -> list[dict[str, Any]]:
    return [d for p in paths for d in yaml.safe_load_all(p.read_text()) if d]


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    """The example overlay as kustomize renders it (kubectl's built-in kustomize)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the base files are still validated one by one")
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / "example")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def test_every_base_manifest_validates() -> None:
    docs = _docs(_files())
    assert {d["kind"] for d in docs} >= {"Job", "Deployment", "Service", "PodDisruptionBudget"}
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_validation_bites() -> None:
    (deployment,) = [d for d in _docs([K8S / "base" / "api.yaml"]) if d["kind"] == "Deployment"]
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProb"] = {}
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_overlay_renders_and_validates(rendered: list[dict[str, Any]]) -> None:
    for doc in rendered:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["kind"] == "Namespace" or doc["metadata"]["namespace"] == "cronicorn"
    kinds = [(d["kind"], d["metadata"]["name"]) for d in rendered]
    assert ("Job", "cronicorn-migrate") in kinds
    assert ("Secret", "cronicorn") in kinds
    pdbs = {
        d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for d in rendered
        if d["kind"] == "PodDisruptionBudget"
    }
    assert pdbs == set(ROLES)


def test_roles_probe_real_health(rendered: list[dict[str, Any]]) -> None:
    config = next(d for d in rendered if d["kind"] == "ConfigMap")["data"]
    secret = next(d for d in rendered if d["kind"] == "Secret")
    secret_keys = set(secret.get("data", {})) | set(secret.get("stringData", {}))
    assert {"AUTH_SECRET", "DATABASE_URL"} <= secret_keys
    assert set(config) | secret_keys <= ALIASES, "every variable is a setting the code reads"
    Settings(_env_file=None, **{**config, "AUTH_SECRET": "x" * 40})  # type: ignore[arg-type]
    job = next(d for d in rendered if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    deployments = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "Deployment"}
    assert set(deployments) == set(ROLES)
    for name, role in ROLES.items():
        pod = deployments[name]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"] == [role]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        ready, live = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
        if role == "api":
            assert ports["http"] == int(config["PORT"])
            assert (ready["path"], live["path"]) == ("/api/health", "/api/doc")
        else:
            assert ports["health"] == int(config["HEALTH_PORT"])
            assert (ready["path"], live["path"]) == ("/health", "/livez")
        assert ready["port"] in ports
        assert live["port"] in ports
        requests = container["resources"]["requests"]
        assert requests["cpu"]
        assert requests["memory"]
        assert container["resources"]["limits"]["memory"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True


UNITS = ROOT / "deploy" / "systemd"


@pytest.fixture(scope="module")
def units(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The units with ExecStart pointing at this checkout's cronicorn (verify checks it)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    target = tmp_path_factory.mktemp("units")
    cli = shutil.which("cronicorn", path=str(Path(__import__("sys").executable).parent))
    assert cli
    for unit in UNITS.iterdir():
        text = unit.read_text().replace("/opt/cronicorn/bin/cronicorn", cli)
        (target / unit.name).write_text(text)
    return target


def test_systemd_units_verify(units: Path) -> None:
    names = sorted(str(p) for p in units.iterdir())
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


def test_systemd_units_are_sandboxed(units: Path) -> None:
    for unit in sorted(units.glob("*.service")):
        done = subprocess.run(
            ["systemd-analyze", "security", "--offline=true", str(unit)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout)
        assert found, done.stdout + done.stderr
        assert float(found.group(1)) <= 2.5, f"{unit.name}: {found.group(1)}"


def test_systemd_units_run_real_commands() -> None:
    from cronicorn.cli import command_names

    commands = command_names()
    for unit in UNITS.glob("*.service"):
        exec_start = re.search(r"^ExecStart=\S+ (\w+)", unit.read_text(), re.M)
        assert exec_start, unit.name
        assert exec_start.group(1) in commands, unit.name
        assert re.search(r"^User=cronicorn$", unit.read_text(), re.M)


def test_caddyfile_proxies_the_api_port_as_the_docs_show() -> None:
    text = (ROOT / "deploy" / "Caddyfile").read_text()
    assert "reverse_proxy 127.0.0.1:3333" in text
    assert "health_uri /api/health" in text
    page = (ROOT / "docs" / "self-hosting" / "reverse-proxy.md").read_text()
    block = re.search(r"```caddyfile\n(.*?)```", page, re.S)
    assert block, "the reverse proxy page shows the Caddyfile"
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#")).strip()
    assert block.group(1).strip() == body
