"""The documentation site: `mkdocs build --strict` (no broken links or nav entries), the API
reference holds every operation of the OpenAPI document, the configuration page holds
.env.example, the signature verifiers on the page accept Cronicorn's own signatures (Python,
Node when installed), the Grafana dashboard asks only for metrics the code exports, and
`cronicorn docs` serves the built site."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cronicorn.api.docs_hook import openapi_document
from cronicorn.signing import compute_signature
from shipping.shipping_support import ROOT
from support import CLI, cli_env, free_port, wait_sync

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300), pytest.mark.xdist_group("docs-site")]

DOCS = ROOT / "docs"
KEY = "5f" * 32
BODY = b'{"queue_depth": 812}'


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", f"{ROOT}/mkdocs.yml"]
    done = subprocess.run(
        [*command, "-d", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=280,
        env={**cli_env(), "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def test_api_reference_lists_every_operation(site: Path) -> None:
    document = openapi_document()
    page = (site / "reference" / "api" / "index.html").read_text()
    found = set(re.findall(r'<h4 id="[^"]*">([A-Z]+) (/[^<\s]*)', page))
    expected = {
        (method.upper(), f"/api{path}")
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert len(expected) > 20
    assert found == expected
    shipped = json.loads((site / "reference" / "openapi.json").read_text())
    assert shipped["paths"].keys() == document["paths"].keys()


def test_configuration_page_holds_every_setting(site: Path) -> None:
    page = (site / "self-hosting" / "configuration" / "index.html").read_text()
    documented = set(
        re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    )
    for name in documented:
        assert name in page, name


def _blocks(language: str) -> list[str]:
    return re.findall(
        rf"```{language}\n(.*?)```", (DOCS / "signature-verification.md").read_text(), re.S
    )


def _signed(timestamp: int) -> tuple[str, str]:
    new = compute_signature(bytes.fromhex(KEY), timestamp, BODY)
    old = compute_signature(bytes.fromhex("00" * 32), timestamp, BODY)
    return str(timestamp), f"sha256={old},sha256={new}"


def test_python_verifier_accepts_cronicorns_signatures() -> None:
    (code,) = _blocks("python")
    scope: dict[str, Any] = {}
    exec(compile(code, "signature-verification.md", "exec"), scope)  # noqa: S102 - our own page
    verify = scope["verify"]
    stamp, header = _signed(int(time.time()))
    assert verify(KEY, stamp, BODY, header) is True
    assert verify(KEY, stamp, BODY + b" ", header) is False
    assert verify(KEY, *_signed(int(time.time()) - 3600)[:1], BODY, header) is False
    assert verify("11" * 32, stamp, BODY, header) is False


def test_node_verifier_accepts_cronicorns_signatures(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    (code,) = _blocks("javascript")
    (tmp_path / "verify.js").write_text(code)
    stamp, header = _signed(int(time.time()))
    stale, stale_header = _signed(int(time.time()) - 3600)
    driver = f"""
const {{ verify }} = require("./verify.js");
const body = Buffer.from({json.dumps(BODY.decode())});
console.log(JSON.stringify([
  verify("{KEY}", "{stamp}", body, "{header}"),
  verify("{KEY}", "{stamp}", Buffer.concat([body, Buffer.from(" ")]), "{header}"),
  verify("{KEY}", "{stale}", body, "{stale_header}"),
  verify("{"11" * 32}", "{stamp}", body, "{header}"),
]));
"""
    (tmp_path / "driver.js").write_text(driver)
    done = subprocess.run(
        [node, "driver.js"], cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [True, False, False, False]


def test_go_verifier_has_the_same_shape() -> None:
    (code,) = _blocks("go")
    for part in (
        '"crypto/hmac"',
        "hmac.Equal",
        'timestamp + "."',
        "300*time.Second",
        'strings.Split(signature, ",")',
    ):
        assert part in code, part


def test_grafana_dashboard_asks_for_exported_metrics() -> None:
    import importlib

    import prometheus_client

    src = ROOT / "src"
    for module in src.joinpath("cronicorn").rglob("*.py"):
        if re.search(r"\b(Counter|Histogram|Gauge)\(", module.read_text()):  # registers metrics
            importlib.import_module(".".join(module.relative_to(src).with_suffix("").parts))
    exported: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    for metric in prometheus_client.REGISTRY.collect():
        exported.add(metric.name)
        exported.update(metric.name + suffix for suffix in suffixes.get(metric.type, ()))
    dashboard = json.loads((DOCS / "self-hosting" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\b(cronicorn_[a-z_]+)", expr)}
    assert used, "the dashboard queries cronicorn metrics"
    assert used <= exported, used - exported


@pytest.fixture
def docs_server(site: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [CLI, "docs", "--site", str(site), "--host", "127.0.0.1", "--port", str(port)],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
        assert proc.returncode == 0


def test_cronicorn_docs_serves_the_site(docs_server: str) -> None:
    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"{docs_server}/", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    wait_sync(answers, timeout=30, what="cronicorn docs")
    with urllib.request.urlopen(f"{docs_server}/self-hosting/upgrading/", timeout=5) as resp:
        assert "Rolling upgrades" in resp.read().decode()
