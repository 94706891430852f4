"""Shared fixtures: one real smoke run of the CLI, reused by the tests that inspect its outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """Runs ``python -m cass_bench ARGS`` from the repository root and captures its output."""
    return subprocess.run([sys.executable, "-m", "cass_bench", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Results folder of ``run --methods cass,supervised --config configs/smoke.yaml``."""
    out = tmp_path_factory.mktemp("smoke") / "out"
    proc = run_cli("run", "--methods", "cass,supervised", "--config", "configs/smoke.yaml", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out
