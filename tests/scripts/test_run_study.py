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


def test_every_queued_run_gets_only_settings_its_config_has(study, monkeypatch):
    """run_comparison stops on a --set key that none of its runs' configs has, which would end the queue."""
    from run_comparison import config_overrides, config_path

    calls = []
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(study, "run", calls.append)
    monkeypatch.setattr(study, "chosen", lambda task: {"vectors_bilstm": "wide", "vectors_elmo_bilstm": "drop3"})
    monkeypatch.setattr(study, "needs_more_seeds", lambda task: True)
    monkeypatch.setattr(study.Path, "write_text", lambda self, text: None)
    study.main()
    assert len(calls) == 8 + 20 + 2
    for argv in calls:
        task, systems = argv[argv.index("--tasks") + 1], argv[argv.index("--systems") + 1:argv.index("--seeds")]
        sets = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--set"]
        for setting in sets:
            assert any(config_overrides(ROOT / config_path(task, system), [setting]) for system in systems), argv
        if "--dev-only" not in argv and systems == ["vectors_elmo_bilstm"]:
            assert "training.dropout=0.3" in sets
