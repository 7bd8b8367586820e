"""scripts/run_study.py: the dev-search grid reaches both configs of the BiLSTM pair alike, and each system
gets its own best setting on dev."""
import importlib
import json
from pathlib import Path

import pytest

from conftest import ROOT


@pytest.fixture
def study(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    return importlib.import_module("run_study")


@pytest.mark.parametrize("task", ["wnut17", "sst5"])
def test_every_setting_reaches_both_systems_alike(study, task):
    from run_comparison import config_overrides, config_path

    for name, overrides in study.settings(task).items():
        found = [config_overrides(ROOT / config_path(task, system), overrides) for system in study.PAIR]
        base, elmo = [dict(zip(args[::2], args[1::2])) for args in found]
        for setting in overrides:
            key = "--" + setting.split("=")[0]
            assert key in elmo or key in base, f"{name}: {setting} is in neither config"
        assert base == {k: v for k, v in elmo.items() if ".elmo" not in k and not k.endswith("tok2vec.width")}, name


def test_each_system_gets_its_own_best_dev_setting(study, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    search = Path("metrics/search/wnut17")
    search.mkdir(parents=True)
    scores = {("vectors_bilstm", "base"): 0.30, ("vectors_bilstm", "wide"): 0.35,
              ("vectors_elmo_bilstm", "base"): 0.42, ("vectors_elmo_bilstm", "wide"): 0.40}
    for (system, variant), score in scores.items():
        (search / f"{system}_{variant}_seed0.json").write_text(json.dumps(
            {"system": system, "variant": variant, "dev_score": score}))
    (search / "vectors_bilstm_lr2_seed0.json.partial").write_text("{}")
    assert study.chosen("wnut17") == {"vectors_bilstm": "wide", "vectors_elmo_bilstm": "base"}
