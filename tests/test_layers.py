"""The package's folders are its layers: imports run one way, downwards, and reading records never needs torch."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cass_bench"
LAYERS = ("__init__", "errors", "config", "data", "records", "models", "engine", "evaluation", "methods", "starts",
          "run", "report", "bench", "cli", "__main__")
"""Bottom to top: a module may import its own layer and the layers before it."""
BLOCK_TORCH = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, _Block())
"""


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "cass_bench":
        return None
    return "__init__" if len(parts) == 1 else parts[1]


def _imports() -> list[tuple[str, str]]:
    """Every (importing module, imported module) inside the package, type-checking imports included."""
    pairs = []
    for file in PACKAGE.rglob("*.py"):
        module = ".".join(file.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                pairs.extend((module, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                pairs.extend([(module, node.module)] + [(module, f"{node.module}.{a.name}") for a in node.names])
    return pairs


def _upward(pairs: list[tuple[str, str]] | None = None) -> set[tuple[str, str]]:
    found = set()
    for module, target in _imports() if pairs is None else pairs:
        mine, theirs = _layer(module), _layer(target)
        if mine is None or theirs is None or theirs not in LAYERS:
            continue
        if LAYERS.index(theirs) > LAYERS.index(mine):
            found.add((module, ".".join(target.split(".")[:2])))
    return found


def test_every_package_folder_is_a_known_layer() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert folders | modules <= set(LAYERS)


def test_no_module_imports_a_layer_above_its_own() -> None:
    assert not _upward(), sorted(_upward())


def test_the_import_walk_sees_an_upward_import() -> None:
    pairs = _imports()
    assert ("cass_bench.run.cell", "cass_bench.records.identity") in pairs
    assert ("cass_bench.config.schema", "cass_bench.config.registry") in pairs
    upward = [("cass_bench.config.schema", "cass_bench.methods.cass"), ("cass_bench.run.cell", "cass_bench.engine")]
    assert _upward(upward) == {("cass_bench.config.schema", "cass_bench.methods")}


def test_no_module_is_over_400_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def _committed(name: str, tmp_path: Path) -> Path:
    """A copy of a committed results folder's records and config."""
    folder = tmp_path / name
    folder.mkdir()
    for file in ("records.jsonl", "config.yaml"):
        shutil.copy2(ROOT / "results" / name / file, folder / file)
    return folder


def test_the_report_is_rebuilt_from_records_with_torch_unimportable(tmp_path: Path) -> None:
    folder = _committed("random-start", tmp_path)
    code = BLOCK_TORCH + (
        "from pathlib import Path\nfrom cass_bench.report import write_report\n"
        f"write_report(Path({str(folder)!r}))\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (folder / "report.md").read_text()
    assert "## Claim checks" in report and "underpowered" in report


def test_a_dry_run_and_status_plan_the_grid_with_torch_unimportable(tmp_path: Path) -> None:
    folder = _committed("start-quality", tmp_path)
    code = BLOCK_TORCH + (
        "from cass_bench.cli import main\n"
        "config, out = sys.argv[1:]\n"
        "assert main(['run', '--config', config, '--out', out, '--seeds', '0,1,2,3', '--dry-run']) == 0\n"
        "assert main(['status', out, '--config', config]) == 0\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(folder / "config.yaml"), str(folder)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "torch is not importable here" in proc.stdout
    assert "8 cells (6 done, 2 pending)" in proc.stdout
    assert "6 cells: 6 done, 0 running, 0 failed, 0 pending" in proc.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "records.jsonl"]
