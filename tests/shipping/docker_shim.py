"""A stand-in for `docker` that runs the Compose stack's operator commands against local
processes, refusing any name the compose file does not define (so a page naming a container or
service that the stack does not have fails, instead of silently working).

  docker exec [-i] CONTAINER CMD…       CMD on that container's embedded server (PATH, PGHOST)
  docker compose stop SERVICE…          app services: SIGTERM to the running `cronicorn up`
  docker compose up -d                  start `cronicorn up` in the background
  docker run --name N -e … -d IMAGE     a scratch embedded server named N (IMAGE = db's image)
  docker rm -f N                        stop and forget it

State lives in SHIM_STATE; the compose file is SHIM_COMPOSE; the app's home CRONICORN_HOME.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import yaml

from cronicorn.embedded import EmbeddedPostgres
from shipping.shipping_support import interpolate

STATE = Path(os.environ["SHIM_STATE"])
COMPOSE: dict[str, Any] = yaml.safe_load(Path(os.environ["SHIM_COMPOSE"]).read_text())
CLI = os.environ["SHIM_CLI"]
APP_SERVICES = {"api", "scheduler", "ai-planner", "web", "docs"}


def die(message: str) -> NoReturn:
    print(f"docker (test shim): {message}", file=sys.stderr)
    sys.exit(125)


def db_service() -> dict[str, Any]:
    return dict(COMPOSE["services"]["db"])


def scratch() -> dict[str, str]:
    path = STATE / "scratch.json"
    return json.loads(path.read_text()) if path.exists() else {}


def home_of(container: str) -> Path:
    if container == db_service()["container_name"]:
        return Path(os.environ["CRONICORN_HOME"])
    if container in scratch():
        return Path(scratch()[container])
    die(f"no such container: {container}")


def docker_exec(args: list[str]) -> NoReturn:
    if args and args[0] == "-i":
        args = args[1:]
    container, command = args[0], args[1:]
    env = {**os.environ, **EmbeddedPostgres(home_of(container)).env()}
    os.execvpe(command[0], command, env)  # noqa: S606 - becomes the command, as docker exec


def app_pid() -> int | None:
    path = STATE / "app.pid"
    return int(path.read_text()) if path.exists() else None


def compose(args: list[str]) -> None:
    services = set(COMPOSE["services"])
    if args[0] == "stop":
        unknown = set(args[1:]) - services
        if unknown:
            die(f"no such service: {sorted(unknown)}")
        if set(args[1:]) >= APP_SERVICES and (pid := app_pid()) is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.05)
            if _alive(pid):
                die("the app did not stop")
            (STATE / "app.pid").unlink()
        elif not set(args[1:]) >= APP_SERVICES:
            die("this stand-in stops all app services together (they are one `cronicorn up`)")
    elif args == ["up", "-d"]:
        log = open(STATE / "app.log", "a")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [CLI, "up"], stdout=log, stderr=log, start_new_session=True, env=dict(os.environ)
        )
        (STATE / "app.pid").write_text(str(proc.pid))
    else:
        die(f"unsupported: docker compose {' '.join(args)}")


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child (started by an earlier shim call)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return _not_zombie(pid)
    return finished == 0


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def run(args: list[str]) -> None:
    name, env, image = None, {}, None
    it = iter(args)
    for arg in it:
        if arg == "--name":
            name = next(it)
        elif arg == "-e":
            key, _, value = next(it).partition("=")
            env[key] = value
        elif arg == "-d":
            continue
        else:
            image = arg
    db = db_service()
    if image != db["image"]:
        die(f"image {image} is not the stack's database image {db['image']}")
    expected = {k: interpolate(str(v), {}) for k, v in db["environment"].items()}
    for key in ("POSTGRES_USER", "POSTGRES_DB"):
        if env.get(key) != expected[key]:
            die(f"{key}={env.get(key)} differs from the stack's {expected[key]}")
    if name is None:
        die("docker run needs --name")
    home = STATE / "containers" / name
    subprocess.run(
        [CLI, "db", "start"], env={**os.environ, "CRONICORN_HOME": str(home)}, check=True
    )
    (STATE / "scratch.json").write_text(json.dumps({**scratch(), name: str(home)}))


def rm(args: list[str]) -> None:
    names = [a for a in args if a != "-f"]
    known = scratch()
    for name in names:
        if name not in known:
            die(f"no such container: {name}")
        env = {**os.environ, "CRONICORN_HOME": known.pop(name)}
        subprocess.run(
            [CLI, "db", "stop", "--force"], env=env, check=True, stdout=subprocess.DEVNULL
        )
    (STATE / "scratch.json").write_text(json.dumps(known))


def main(argv: list[str]) -> None:
    if not argv:
        die("no command")
    command, rest = argv[0], argv[1:]
    if command == "exec":
        docker_exec(rest)
    elif command == "compose":
        compose(rest)
    elif command == "run":
        run(rest)
    elif command == "rm":
        rm(rest)
    else:
        die(f"unsupported: docker {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
