"""The code versions behind the records: the git commits they name, and the seeds whose methods ran on different
commits (their differences may mix a code change into a method's effect)."""

from __future__ import annotations

import pandas as pd

from cass_bench.records.schema import OK

COMMIT = "git_commit"
SHORT = 7


def short(commit: object) -> str:
    """A commit as its first 7 characters (``unknown`` when not recorded)."""
    return str(commit)[:SHORT] if isinstance(commit, str) and commit else "unknown"


def commit_counts(records: pd.DataFrame) -> pd.Series:
    """Finished records per (short) commit, most records first."""
    ok = records[records["status"] == OK]
    return ok[COMMIT].map(short).value_counts()


def mixed_seeds(records: pd.DataFrame) -> dict[int, dict[tuple[str, str], list[str]]]:
    """Per seed whose finished records name more than one commit: each (method, arch)'s commits (short, sorted)."""
    out: dict[int, dict[tuple[str, str], list[str]]] = {}
    for seed, group in record_commits(records).groupby("seed"):
        if group["commit"].nunique() > 1:
            out[int(seed)] = {(m, a): sorted(set(c)) for (m, a), c in group.groupby(["method", "arch"])["commit"]}
    return out


def _by_commit(methods: dict[tuple[str, str], list[str]]) -> str:
    """``59d3ecd (byol, cass, dino), 6db1cf5 (supervised)``: each commit with the methods (-arch where only one of a
    method's encoders ran on it) that ran on it."""
    runs: dict[str, list[str]] = {}
    for (method, arch), commits in methods.items():
        for commit in commits:
            runs.setdefault(commit, []).append(f"{method}-{arch}")
    out = []
    for commit, names in sorted(runs.items()):
        methods_here = sorted({n.rsplit("-", 1)[0] for n in names})
        whole = [m for m in methods_here if all(f"{m}-{a}" in names for (mm, a) in methods if mm == m)]
        out.append(f"{commit} ({', '.join(sorted([*whole, *(n for n in names if n.rsplit('-', 1)[0] not in whole)]))})")
    return ", ".join(out)


def version_lines(records: pd.DataFrame) -> list[str]:
    """The commits behind the records, and one line naming the seeds whose methods ran on different commits."""
    counts = commit_counts(records)
    if counts.empty:
        return []
    lines = [f"Code versions: {len(counts)} commit{'s' * (len(counts) != 1)} behind the finished records ("
             + ", ".join(f"{c} {n}" for c, n in counts.items()) + " records)."]
    mixed = mixed_seeds(records)
    if mixed:
        lines.append(f"WARNING: in {len(mixed)} seed{'s' * (len(mixed) != 1)} the methods ran on different commits, so "
                     "a row's per-seed difference there may hold a code change (flag \"commits\"): "
                     + "; ".join(f"seed {s}: " + _by_commit(methods) for s, methods in mixed.items()) + ".")
    return lines


RUN_FIELDS = ["seed", "dataset", "method", "arch", "label_fraction", "batch_size", "pretrain_epochs"]


def record_commits(records: pd.DataFrame) -> pd.DataFrame:
    """The distinct (seed, dataset, method, arch, label fraction, batch size, epochs, short commit) of the finished
    records: what :func:`mixed_within` reads."""
    ok = records[records["status"] == OK]
    return ok[RUN_FIELDS].assign(commit=ok[COMMIT].map(short)).drop_duplicates().reset_index(drop=True)


def mixed_within(commits: pd.DataFrame, selected: pd.Series) -> list[int]:
    """The seeds whose ``selected`` rows of :func:`record_commits` name more than one commit."""
    per_seed = commits[selected].groupby("seed")["commit"].nunique()
    return sorted(int(s) for s in per_seed[per_seed > 1].index)
