"""Command line: ``cass-bench`` (or ``python -m cass_bench``) ``run|status|report|list|export|bench-compare|
bench-ratios``. Bad input exits with status 2 and one line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Literal, NoReturn, Sequence, get_args, get_origin

from cass_bench import __version__
from cass_bench.config.files import DEFAULT, packaged_configs
from cass_bench.config.fields import config_flags
from cass_bench.config.schema import BenchConfig
from cass_bench.engine.quiet import set_verbose, silence_library_warnings
from cass_bench.errors import UserError

MODULE_PROGRAM = "python -m cass_bench"
INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report it."""


def program_name(argv0: str | None = None) -> str:
    """The name the CLI was called by: ``cass-bench`` for the console script, ``python -m cass_bench`` for the module."""
    name = Path(sys.argv[0] if argv0 is None else argv0).name
    return MODULE_PROGRAM if name in ("", "__main__.py", "-c") else name


def _positive(text: str) -> int:
    """A whole number of 1 or more (an argparse type)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of 1 or more")
    return value


def _list_of(kind: Callable[[str], Any], what: str) -> Callable[[str], tuple[Any, ...]]:
    def parse(text: str) -> tuple[Any, ...]:
        try:
            return tuple(kind(x.strip()) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of {what}") from None
    return parse


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (the problem and where the usage is), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}; see {self.prog} --help\n")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if isinstance(action, argparse._SubParsersAction) and value not in action.choices:
            shown = ", ".join(repr(name) for name in action.choices if not name.startswith("_"))
            raise argparse.ArgumentError(None, f"unknown command {value!r} (choose from {shown})")
        super()._check_value(action, value)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=program_name(), description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="pretrain, fine-tune and record every cell of the sweep, then report")
    run.add_argument("--config", help=f"YAML file, or a packaged config's name: {', '.join(packaged_configs())} "
                                      f"(default: {DEFAULT})")
    _add_config_flags(run)
    run.add_argument("--shard", help="run shard i of n (i/n, 0-based) of the sweep")
    run.add_argument("--dry-run", action="store_true",
                     help="print the grid, what is done, failed or pending and the time left; write nothing")
    run.add_argument("--retry-failed", action="store_true",
                     help="run failed records again in place (the checkpoint cache is kept)")
    run.add_argument("--rebuild", metavar="KEY|RECORD_ID",
                     help="run one cell again: the cell with this checkpoint key or record id has its records removed "
                          "and written again, and its checkpoint pretrained again when missing (after checkpoints/ "
                          "was deleted); the rest of the shard's pending cells run too, as in any run")
    run.add_argument("--wait", action="store_true",
                     help="with a job launcher: follow the jobs until they end, then write the report")
    run.add_argument("--verbose", action="store_true",
                     help="show every library line and warning (Lightning's banners, deprecations), in the cells too")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                     help="any config value by dotted key, e.g. --set finetune.lr=0.001 (repeatable)")
    run.add_argument("--method-module", dest="method_modules", action="append", default=[], metavar="MODULE",
                     help="register a plug-in method module (one defining METHOD = MethodSpec(...)) before the "
                          "config is read, e.g. --method-module mylab.mymethod (repeatable; see docs/methods.md)")

    report = sub.add_parser("report", help="regenerate the report of a results folder from its records")
    report.add_argument("dir", help="results folder holding records.jsonl")
    report.add_argument("--format", default="markdown", choices=["markdown", "github", "latex", "csv"])
    report.add_argument("--batch-size", type=int, help="main setting's pretraining batch size (default: 16 if run)")
    report.add_argument("--epochs", type=int, help="main setting's pretraining epochs (default: the most run)")

    status = sub.add_parser("status", help="done, running, failed and pending cells of a results folder")
    status.add_argument("dir", help="results folder")
    status.add_argument("--config", help="the config it was run with (default: the one its last job run saved)")
    status.add_argument("--lines", type=_positive, default=5, help="stderr lines shown per failed job (default 5)")

    sub.add_parser("list", help="name the methods, datasets and packaged configs")

    export = sub.add_parser("export", help="write a record's pretrained encoder as .safetensors + timm arguments (JSON)")
    export.add_argument("folders", nargs="*", metavar="DIR DEST",
                        help="the results folder holding records.jsonl and checkpoints/, then the folder to write "
                             "<arch>.safetensors and <arch>.json to (created)")
    export.add_argument("--record", help="record_id whose encoder (its arch) is exported")
    export.add_argument("--start", metavar="DEST",
                        help="instead: write the fractal start of --config (trained first when not cached) to DEST as "
                             "cnn.safetensors and vit.safetensors with their source classifiers, plus start.json; "
                             "DEST is then a valid --init")
    export.add_argument("--config", help="with --start: the config whose source section names the start")
    export.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="with --start: any config value by dotted key, e.g. --set source.epochs=5")
    export.add_argument("--force", action="store_true", help="overwrite those files when the folder holds them")

    bench = sub.add_parser("bench-compare", help="per-benchmark NEW/OLD time and FLOPs ratios of two benchmark JSONs")
    bench.add_argument("old", help="pytest-benchmark JSON of the reference run, e.g. results/ci/benchmark.json")
    bench.add_argument("new", help="pytest-benchmark JSON of the run to compare")

    ratios = sub.add_parser("bench-ratios", help="CASS's per-step time and FLOPs relative to DINO and BYOL")
    ratios.add_argument("file", help="pytest-benchmark JSON, e.g. results/ci/benchmark.json")

    cell = sub.add_parser("_cell")  # internal (a cell's process): no help row, left out of the metavar
    cell.add_argument("spec")
    cell.add_argument("--method-module", dest="method_modules", action="append", default=[],
                      help="a plug-in method module to import (a spec names none of its own)")
    sub.metavar = "{" + ",".join(name for name in sub.choices if not name.startswith("_")) + "}"
    return parser


WORDS = {str: "names", int: "whole numbers", float: "numbers"}
"""How a list flag's items are named in its error line."""


def _flag_type(hint: Any) -> Callable[[str], Any] | None:
    """The argparse type of a field's flag: a comma-separated list for a tuple, the item type otherwise; words (text,
    a choice) stay text, checked when the config loads."""
    args = [a for a in get_args(hint) if a is not type(None)]
    if get_origin(hint) is tuple:
        return _list_of(_number_type(args[0]) or str, WORDS.get(args[0], "values"))
    return _number_type(args[0] if args and get_origin(hint) is not Literal else hint)


def _number_type(hint: Any) -> type | None:
    return hint if hint in (int, float) else None


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of the config fields that declare one (:func:`cass_bench.config.fields.config_flags`)."""
    for key, flag, hint in config_flags(BenchConfig):
        if hint is bool:  # a switch: present sets the field, absent leaves the config's value
            parser.add_argument(*flag.names, dest=key, action="store_const", const=True, help=flag.help)
            continue
        parser.add_argument(*flag.names, dest=key, type=_flag_type(hint), help=flag.help, choices=flag.choices,
                            metavar=None if flag.choices else key.rpartition(".")[2].upper(),
                            **({"nargs": "?", "const": flag.const} if flag.const is not None else {}))


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {**{key: getattr(args, key) for key, _, _ in config_flags(BenchConfig)}, **_set_pairs(args.sets)}


def _set_pairs(items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as a mapping (a VALUE in brackets is a YAML list); UserError on a malformed one."""
    mapping: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set '{item}' is malformed; write it as KEY=VALUE, e.g. --set finetune.lr=0.001")
        value = value.strip()
        if value.startswith("[") and value.endswith("]"):
            from cass_bench.config.files import read_yaml

            value = read_yaml(value, f"--set {key.strip()}")
        mapping[key.strip()] = value
    return mapping


def _export(args: argparse.Namespace) -> list[Path]:
    """``export``: a record's encoder, or with ``--start`` the fractal start of a config."""
    if args.start:
        if args.folders or args.record:
            raise UserError("export --start DEST writes the start of a config; leave out the results folder, "
                            "--record and the second folder")
        from cass_bench.config.files import resolve_config
        from cass_bench.config.load import load_config
        from cass_bench.starts.export import export_start

        return export_start(load_config(resolve_config(args.config), _set_pairs(args.sets)), args.start, args.force)
    if len(args.folders) != 2 or not args.record:
        raise UserError("export needs a results folder, --record RECORD_ID and a destination folder "
                        "(export DIR --record ID DEST), or --start DEST to write the fractal start")
    from cass_bench.run.export import export_encoder

    return export_encoder(args.folders[0], args.record, args.folders[1], args.force)


def _ending(out: Path) -> str:
    """Writes the report; returns the short ending: claim checks, record counts, where the report and plots are."""
    from cass_bench.report import write_report
    from cass_bench.report.claims.decide import headline
    from cass_bench.report.costs import DATA_WAIT_LIMIT, data_wait_warnings
    from cass_bench.run.console import ending

    analysis = write_report(out).analysis
    notes = [f"warning: data wait above {100 * DATA_WAIT_LIMIT:.0f}% of the epoch time, raise --num-workers: {line}"
             for line in data_wait_warnings(analysis.costs)]
    return ending(headline(analysis.claims), analysis.records["status"], out / "report.md", sorted(out.glob("*.png")),
                  notes)


def _run(args: argparse.Namespace) -> None:
    from cass_bench.config.files import resolve_config
    from cass_bench.config.load import load_config
    from cass_bench.config.registered import registered_config
    from cass_bench.run.api import RunRequest, dry_run, execute
    from cass_bench.run.grid import parse_shard

    cfg = registered_config(load_config(resolve_config(args.config), _overrides(args)), write=False,
                            strict=not args.dry_run)
    request = RunRequest(cfg, parse_shard(args.shard), args.retry_failed, args.rebuild, args.wait)
    say = lambda line: print(line, flush=True)  # noqa: E731
    if args.dry_run:
        print(dry_run(request, say))
        return
    from cass_bench.records.store import RecordStore
    from cass_bench.report.seedplan import plan_from_folder

    if not execute(request, lambda out, registered: plan_from_folder(out, registered).planned, say):
        return
    if not RecordStore(cfg.out).load():
        print(f"No records in {cfg.out} yet (the other shards' cells are still running): the report follows when "
              f"one of them ends, or with `python -m cass_bench report {cfg.out}`.")
        return
    print(_ending(Path(cfg.out)))


def _list() -> None:
    from cass_bench.data.sources import dataset_names
    from cass_bench.config.registry import get_method, method_names

    print("methods:")
    for name in method_names():
        print(f"  {name:<11} {get_method(name).summary}")
    print("datasets:")
    for name in dataset_names():
        print(f"  {name}")
    print("configs (--config NAME):")
    for name in packaged_configs():
        print(f"  {name}")


def _options_first(argv: list[str]) -> list[str]:
    """``export DIR --record ID DEST`` as ``export --record ID DIR DEST``: argparse matches the positionals around an
    option in separate chunks, so the folders must come together."""
    if not argv or argv[0] != "export" or "--record" not in argv[:-1]:
        return argv
    at = argv.index("--record")
    return [argv[0], *argv[at:at + 2], *argv[1:at], *argv[at + 2:]]


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns the exit status (2 for bad input)."""
    args = _parser().parse_args(_options_first(list(sys.argv[1:] if argv is None else argv)))
    if args.command == "run" and args.verbose:
        set_verbose(True)
    silence_library_warnings()
    try:
        if args.command == "run":
            from cass_bench.config.registry import register

            for module in args.method_modules:
                register(module)
            _run(args)
        elif args.command == "report":
            from cass_bench.report import write_report

            print(write_report(Path(args.dir), args.format, args.batch_size, args.epochs).terminal)
        elif args.command == "status":
            from cass_bench.run.status import cell_statuses, render_status, spending_text, status_config

            print(render_status(cell_statuses(status_config(Path(args.dir), args.config), args.lines)))
            print("\n" + spending_text(Path(args.dir)))
        elif args.command == "list":
            _list()
        elif args.command == "export":
            print("Written: " + ", ".join(str(p) for p in _export(args)))
        elif args.command == "bench-compare":
            from cass_bench.bench.compare import compare_files

            print(compare_files(args.old, args.new))
        elif args.command == "bench-ratios":
            from cass_bench.bench.ratios import ratio_report

            print(ratio_report(args.file))
        elif args.command == "_cell":
            from cass_bench.run.sweep import run_cell_process

            run_cell_process(args.spec, args.method_modules)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.command != "_cell":  # the sweep that started a cell process says it once
            print("interrupted; finished records are kept: run the same command again to resume", file=sys.stderr)
        return INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
