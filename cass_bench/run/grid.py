"""The grid of a config: its cells, shards of them, and the checks that need no torch.

Grid: datasets x seeds x batch sizes x pretraining epochs x methods x encoders (CASS trains both encoders in one
cell; the reference method has no pretraining, so it has one cell per encoder and seed). Label fractions fan out
inside a cell. ``run --dry-run``, ``plan`` and ``status`` use this module alone; running the cells is
:mod:`cass_bench.run.sweep`.
"""

from __future__ import annotations

from typing import Any

from cass_bench.config.schema import BenchConfig
from cass_bench.data.sources import check_dataset, load_dataset
from cass_bench.errors import UserError
from cass_bench.config.registry import get_method
from cass_bench.records.identity import Cell, config_hash, record_keys, setting_of
from cass_bench.records.schema import OK
from cass_bench.records.store import RecordStore


def expand(cfg: BenchConfig) -> list[Cell]:
    """Every cell of the grid, in a stable order (all methods of a seed before the next seed)."""
    cells: list[Cell] = []
    for dataset in cfg.datasets:
        for seed in cfg.seeds:
            for method in cfg.methods:
                if get_method(method).build is None:
                    cells.extend(Cell(dataset, method, (a,), None, 0, seed) for a in cfg.archs)
            for batch_size in cfg.batch_sizes:
                for epochs in cfg.pretrain_epochs:
                    for method in cfg.methods:
                        spec = get_method(method)
                        if spec.build is None:
                            continue
                        groups = [cfg.archs] if spec.joint else [(a,) for a in cfg.archs]
                        cells.extend(Cell(dataset, method, g, batch_size, epochs, seed) for g in groups)
    return cells


def parse_shard(text: str | None) -> tuple[int, int]:
    """Parses ``i/n`` (0-based shard i of n); None means the whole sweep."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--shard '{text}' is malformed; write it as i/n, e.g. 0/2 for the first of two") from None
    if n < 1 or not 0 <= i < n:
        raise UserError(f"--shard {text} is impossible; i must be in 0..n-1, e.g. 0/2 and 1/2")
    return i, n


def shard_cells(cfg: BenchConfig, shard: tuple[int, int]) -> list[Cell]:
    """The cells shard ``(i, n)`` runs: ``i, i+n, i+2n, ...`` of :func:`expand`."""
    return expand(cfg)[shard[0]::shard[1]]


def check_grid(cfg: BenchConfig) -> None:
    """The checks that need no torch: methods and their recipes, datasets and batch sizes, one configuration.

    Raises:
        UserError: on the first problem, naming it and the fix.
    """
    for method in cfg.methods:
        get_method(method)
        if method in cfg.recipes:
            cfg.recipes[method].check(cfg)
    for name in cfg.datasets:
        bundle = load_dataset(name, cfg.image_size, cfg.data_dir, cfg.split_seed)
        check_dataset(bundle)
        for batch_size in cfg.batch_sizes:
            if batch_size * cfg.devices * cfg.num_nodes > len(bundle.train):
                raise UserError(
                    f"batch size {batch_size} is larger than the {len(bundle.train)} training images of "
                    f"'{name}' allow; use a batch size <= {len(bundle.train) // (cfg.devices * cfg.num_nodes)}"
                )
    check_one_configuration(cfg, RecordStore(cfg.out).load())


def check_one_configuration(cfg: BenchConfig, records: list[dict[str, Any]]) -> None:
    """Refuses a run whose records would sit beside finished records of another configuration of the same setting.

    The report does not average records of different ``config_hash`` values as seeds (it refuses such a folder), so a
    run that would create that mix (e.g. ``--init random`` into a folder of ``--init imagenet`` results) is stopped
    before any work instead of after it.

    Raises:
        UserError: naming the setting, both hashes and the fix (another ``--out``).
    """
    mine: dict[tuple[Any, ...], str] = {}
    for cell in expand(cfg):
        digest = config_hash(cfg.for_dataset(cell.dataset), cell.method)
        for arch, fraction, evaluation in record_keys(cell, cfg):
            mine[setting_of({"dataset": cell.dataset, "method": cell.method, "arch": arch, "eval": evaluation,
                             "label_fraction": fraction, "batch_size": cell.batch_size,
                             "pretrain_epochs": cell.pretrain_epochs})] = digest
    for record in records:
        if record.get("status") != OK:
            continue
        setting = setting_of(record)
        if setting in mine and record.get("config_hash") != mine[setting]:
            raise UserError(
                f"{cfg.out} already holds finished records of another configuration (config_hash "
                f"{record.get('config_hash')}; this run's is {mine[setting]}) for {record.get('method')}/"
                f"{record.get('arch')} {record.get('eval')} at {record.get('label_fraction')} of the labels on "
                f"{record.get('dataset')}; give this configuration its own --out (one results folder per configuration)"
            )
