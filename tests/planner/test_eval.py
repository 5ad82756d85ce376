"""bench/planner_eval.py runs in CI against the scripted model: every worked scenario of
the reference passes with good decisions, and the scoring fails a wrong one."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

BENCH = Path(__file__).resolve().parents[2] / "bench" / "planner_eval.py"


@pytest.fixture(scope="module")
def evaluation() -> ModuleType:
    spec = importlib.util.spec_from_file_location("planner_eval", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["planner_eval"] = module
    spec.loader.exec_module(module)
    return module


async def test_every_scenario_passes_with_the_scripted_decisions(
    evaluation: ModuleType,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    code = await evaluation.main(evaluation.parse(["--database-url", database_url]))
    out = capsys.readouterr().out
    assert "score: 7/7" in out
    assert code == 0


async def test_the_scoring_fails_a_wrong_decision(
    evaluation: ModuleType, engine: AsyncEngine
) -> None:
    sustained = next(
        s for s in evaluation.scenarios(datetime.now(UTC)) if s.name == "queue: sustained warning"
    )
    steady = next(s for s in evaluation.scenarios(datetime.now(UTC)) if s.name == "steady state")
    async with evaluation.scripted() as (server, base):
        config = evaluation.ModelConfig(base_url=base, api_key="x", model="scripted")
        sustained.script = steady.script  # does nothing where it should tighten
        lazy = await evaluation.run_one(engine, sustained, config, server)
        steady.script = [
            [evaluation._call("propose_interval", intervalMs=60000)],
            [evaluation._submit("tightened for no reason", 600000)],
        ]
        jumpy = await evaluation.run_one(engine, steady, config, server)
    assert lazy.passed is False
    assert jumpy.passed is False
    assert jumpy.actions == "propose_interval"
