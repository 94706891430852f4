"""The harness's words as types: evaluations and statuses refuse unknown words; run keys survive hyphenated names."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cass_bench.config.schema import ARCHS
from cass_bench.config.vocabulary import EVALS, MAIN_EVAL, Eval, Status
from cass_bench.errors import UserError
from cass_bench.config import registry
from cass_bench.records.schema import OK


def test_an_unknown_evaluation_is_refused_with_the_known_names() -> None:
    assert Eval.parse("knn") is Eval.KNN
    with pytest.raises(UserError, match=r"unknown evaluation 'probe'; choose from finetune, linear, knn"):
        Eval.parse("probe")


def test_words_are_written_as_their_plain_values() -> None:
    assert EVALS == ("finetune", "linear", "knn") and MAIN_EVAL == "finetune"
    assert OK is Status.OK and OK == "ok" and str(Status.DIVERGED) == "diverged"
    assert json.loads(json.dumps({"status": Status.OOM, "eval": Eval.LINEAR})) == {"status": "oom", "eval": "linear"}


def test_a_run_key_of_a_hyphenated_method_name_parses_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hyphen_method.py").write_text(
        "from cass_bench.config.registry import MethodSpec\n"
        "METHOD = MethodSpec('sim-clr', 'a plug-in with a hyphen', joint=False, build='hyphen_method:build')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.register("hyphen_method")
    try:
        names = registry.run_keys(ARCHS)
        assert names[:4] == ["cass", "dino-cnn", "dino-vit", "byol-cnn"] and "sim-clr-vit" in names
        assert registry.parse_run_key("sim-clr-vit", ARCHS) == registry.RunKey("sim-clr", ("vit",))
        assert registry.parse_run_key("cass", ARCHS) == registry.RunKey("cass", ARCHS)
        assert registry.RunKey("sim-clr", ("cnn",)).label == "SIM-CLR-cnn"
        with pytest.raises(UserError, match="unknown pretraining run 'sim-vit'"):
            registry.parse_run_key("sim-vit", ARCHS)
    finally:
        registry.unregister("hyphen_method")
        sys.modules.pop("hyphen_method", None)
