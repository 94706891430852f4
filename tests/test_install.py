"""The project installs as a tool: the sdist's wheel equals the checkout's and runs the smoke config from an empty folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "cass_bench", "baselines", "configs")


def _run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


def _source_copy(tmp_path: Path) -> Path:
    """A copy of the checkout's packaged sources, so a build leaves nothing in the checkout."""
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    return source


def _sdist(source: Path, tmp_path: Path, env: dict[str, str]) -> Path:
    """An sdist built from ``source``, unpacked: the tree a user gets from the package index."""
    _run(sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", tmp_path / "dist", source, cwd=tmp_path,
         env=env)
    (archive,) = (tmp_path / "dist").glob("cass_bench-*.tar.gz")
    shutil.unpack_archive(archive, tmp_path / "unpacked")
    (tree,) = (tmp_path / "unpacked").iterdir()
    return tree


def _wheel(source: Path, folder: Path, tmp_path: Path, env: dict[str, str]) -> Path:
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", folder,
         source, cwd=tmp_path, env=env)
    (wheel,) = folder.glob("cass_bench-*.whl")
    return wheel


def _contents(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.mark.slow
def test_wheel_installs_and_runs_the_packaged_smoke_config_from_an_empty_folder(tmp_path: Path) -> None:
    """The wheel of the sdist (what a user gets from the package index) holds exactly the checkout wheel's files, and
    installed alone it runs the packaged smoke config."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    source = _source_copy(tmp_path)
    assert not any(p.is_symlink() for p in source.rglob("*")), "the package tree holds links"
    from_checkout = _contents(_wheel(source, tmp_path / "checkout", tmp_path, env))
    wheel = _wheel(_sdist(source, tmp_path, env), tmp_path / "sdist", tmp_path, env)
    assert _contents(wheel) == from_checkout
    assert any(name.startswith("cass_bench/configs/") and name.endswith("smoke.yaml") for name in from_checkout)
    assert any(name.startswith("cass_bench/methods/baselines/") for name in from_checkout)
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--system-site-packages", venv, cwd=tmp_path, env=env)
    _run(venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q", wheel,
         cwd=tmp_path, env=env)

    empty = tmp_path / "empty"
    empty.mkdir()
    where = _run(venv / "bin" / "python", "-c", "import cass_bench.methods.baselines.dino as m; print(m.__file__)",
                 cwd=empty, env=env)
    assert Path(where.stdout.strip()).is_relative_to(venv)
    assert _run(venv / "bin" / "cass-bench", "--help", cwd=empty, env=env).stdout.startswith("usage: cass-bench ")
    assert _run(venv / "bin" / "cass-bench", "--version", cwd=empty, env=env).stdout.split() == ["cass-bench", "0.1.0"]

    _run(venv / "bin" / "cass-bench", "run", "--config", "smoke", "--methods", "cass", "--label-fractions", "1",
         "--evals", "knn", cwd=empty, env=env)
    out = empty / "runs" / "smoke"
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["status"] == "ok" and r["method"] == "cass" for r in records)
    assert (out / "report.md").is_file() and (out / "config.yaml").is_file() and (out / "logs" / "pretrain").is_dir()
