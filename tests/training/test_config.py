"""TrainConfig and the table of biLM kinds: each kind's defaults come from one place, the CLI's options are
the config's, a setting of another kind is refused, and runs stored before kinds owned their settings resume."""
from dataclasses import replace

import pytest
import torch

from cli_helpers import cli, fails, snapshot
from spacy_elmo.errors import InputError
from spacy_elmo.training import trainer
from spacy_elmo.training.checkpoint import load_checkpoint, run_config
from spacy_elmo.training.config import TrainConfig
from spacy_elmo.training.export import export
from spacy_elmo.training.kinds import KINDS

from .helpers import KINDS as KIND_NAMES, TINY_ARGS, make_corpus, tiny_config

FOREIGN = {"lstm": ["--input-dim", "64", "--n-heads", "4"], "transformer": ["--lstm-dim", "999", "--projection-dim", "77"]}


@pytest.mark.parametrize("bilm", KIND_NAMES)
def test_each_kind_fills_in_its_own_defaults_and_leaves_the_others_unset(bilm):
    config = TrainConfig(train=["t"], vocab="v", output="o", bilm=bilm)
    assert {name: getattr(config, name) for name in KINDS[bilm].defaults} == KINDS[bilm].defaults
    others = {name for kind in KINDS.values() for name in kind.defaults} - set(KINDS[bilm].defaults)
    assert others and all(getattr(config, name) is None for name in others)
    assert config.unroll_steps == {"lstm": 20, "transformer": 64}[bilm]


@pytest.mark.parametrize("bilm", KIND_NAMES)
def test_the_cli_builds_the_config_python_builds(bilm, tmp_path, monkeypatch):
    """No option given: the run's settings are TrainConfig's defaults, for either kind."""
    built = []
    monkeypatch.setattr(trainer, "train", lambda config, **kwargs: built.append(config) or {})
    args = ["pretrain", tmp_path / "text", "--vocab", tmp_path / "vocab.txt", "-o", tmp_path / "run", "--bilm", bilm]
    assert cli(*args).exit_code == 0
    assert built == [TrainConfig(train=[str(tmp_path / "text")], vocab=str(tmp_path / "vocab.txt"),
                                 output=str(tmp_path / "run"), bilm=bilm)]


def test_pretrain_help_states_each_kinds_defaults():
    shown = " ".join(cli("pretrain", "--help").output.split())
    assert "(default: 20 for lstm, 64 for transformer)" in shown
    assert "LSTM cell size (lstm only; default 512)" in shown and "Feed-forward size (transformer only; default 1024)" in shown


@pytest.mark.parametrize("bilm", KIND_NAMES)
def test_settings_of_another_kind_are_refused_with_the_reason(bilm, tmp_path):
    """`pretrain --bilm transformer --lstm-dim 999 --projection-dim 77` (and the LSTM's twin) used to train,
    ignoring them and recording them in the checkpoint. Refused before the text is read."""
    other = next(kind for kind in KIND_NAMES if kind != bilm)
    root = make_corpus(tmp_path)
    before = snapshot(tmp_path)
    fails(cli("pretrain", root / "train", "--vocab", root / "vocab.txt", "-o", tmp_path / "run",
              "--bilm", bilm, *FOREIGN[bilm], "--max-steps", "1"),
          rf"training settings only for {other} biLMs were given to a '{bilm}' run, which would ignore them: "
          rf"{FOREIGN[bilm][0][2:].replace('-', '_')}, {FOREIGN[bilm][2][2:].replace('-', '_')}; drop them")
    assert snapshot(tmp_path) == before
    with pytest.raises(InputError, match="which would ignore them"):
        TrainConfig(train=["t"], vocab="v", output="o", bilm=bilm, **KINDS[other].defaults)


def test_a_transformer_width_that_the_heads_cannot_split_is_refused(tmp_path):
    fails(cli("pretrain", tmp_path / "text", "--vocab", tmp_path / "vocab.txt", "-o", tmp_path / "run", "--bilm",
              "transformer", "--input-dim", "12"), r"input_dim \(12\) must be even and a multiple of n_heads \(8\)")
    assert not (tmp_path / "run").exists()


def test_resume_refuses_another_kind_or_size(tmp_path):
    root = make_corpus(tmp_path)
    run = tmp_path / "run"
    assert cli("pretrain", root / "train", "--vocab", root / "vocab.txt", "-o", run, *TINY_ARGS["transformer"],
               "--max-steps", "1").exit_code == 0
    before = snapshot(tmp_path)
    fails(cli("pretrain", "-o", run, "--resume", "--bilm", "lstm"), r"bilm: run 'transformer', given 'lstm'")
    fails(cli("pretrain", "-o", run, "--resume", "--input-dim", "32"), r"input_dim: run 16, given 32")
    assert snapshot(tmp_path) == before


def test_train_config_rejects_values_out_of_bounds(tmp_path):
    for bad in ({"learning_rate": float("nan")}, {"clip_norm": 0.0}, {"dropout": 1.0}, {"batch_size": 0},
                {"max_minutes": float("inf")}, {"unroll_steps": True}):
        with pytest.raises(InputError, match="^training setting "):
            tiny_config(tmp_path, **bad)
    for bad, pattern in (({"optimizer": "sgd"}, "unknown optimizer 'sgd'"), ({"bilm": "gru"}, "unknown biLM architecture")):
        with pytest.raises(InputError, match=pattern):
            TrainConfig(train=["t"], vocab="v", output="o", **bad)


@pytest.mark.parametrize("bilm", KIND_NAMES)
def test_a_run_that_stored_every_kinds_settings_resumes_and_exports(tmp_path, bilm):
    """Runs made before each kind owned its settings stored all of them, the other kinds' at their defaults."""
    root = make_corpus(tmp_path)
    config = tiny_config(root, bilm, max_steps=2, heldout=[])
    trainer.train(config)
    ckpt = load_checkpoint(root / "run")
    ckpt["config"].update({"lstm_dim": 512, "projection_dim": 128, "cell_clip": 3.0, "proj_clip": 3.0,
                           "use_skip_connections": True, "input_dim": 256, "hidden_dim": 1024, "n_heads": 8,
                           **{k: v for k, v in vars(config).items() if k in KINDS[bilm].defaults}})
    torch.save(ckpt, root / "run" / "checkpoint.pt")
    assert replace(run_config(ckpt, root / "run"), train=config.train, vocab=config.vocab) == config
    assert cli("pretrain", "-o", root / "run", "--resume", "--max-steps", "3").exit_code == 0
    assert load_checkpoint(root / "run")["step"] == 3
    export(root / "run", tmp_path / "export")
