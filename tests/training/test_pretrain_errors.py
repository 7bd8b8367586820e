"""Bad input and faults of `pretrain`: flags, run directories and resuming, from the command line, from
Python and through `spacy elmo`.

Every case exits non-zero with one `Error:` line naming the file, option or value, never a traceback, and
loses or leaves nothing. Exit status 2 is click's for a bad flag value."""
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli_helpers import bad_flag, cli, fails, snapshot, temp_files
from spacy_elmo.errors import InputError
from spacy_elmo.training.checkpoint import load_checkpoint, run_config
from spacy_elmo.training.trainer import train

from .helpers import TINY_ARGS, make_corpus


# --- pretrain: flags --------------------------------------------------------------------------

@pytest.mark.parametrize("flag,value,shown", [
    ("--batch-size", "0", "0 is not an integer >= 1"),
    ("--filters", "abc", "'abc' is not a width:count pair"),
    ("--filters", "1:32,2:0", "'2:0' is not a width:count pair"),
    ("--learning-rate", "nan", "nan is not a finite number in (0, inf]"),
    ("--learning-rate", "-0.1", "-0.1 is not a finite number"),
    ("--clip-norm", "inf", "inf is not a finite number"),
    ("--dropout", "1", "1.0 is not a finite number in [0, 1)"),
    ("--max-minutes", "nan", "nan is not a finite number"),
    ("--optimizer", "sgd", "'sgd' is not one of adagrad, adam"),
    ("--unroll-steps", "0", "0 is not an integer >= 1"),
    ("--lstm-dim", "x", "should be a valid integer"),
])
def test_pretrain_bad_flag_values(flag, value, shown, trained, tmp_path):
    bad_flag(cli("pretrain", trained / "train", "--vocab", trained / "vocab.txt", "-o", tmp_path / "run", flag, value),
             flag, shown)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args,pattern", [
    (["--projection-dim", "32"], r"projection_dim \(32\) must not exceed lstm\.dim \(16\)"),
    (["--lstm-dim", "4000000", "--projection-dim", "1000000"], r"more than this machine's .* of memory"),
    (["--filters", "60:4"], r"char_cnn\.filters has an invalid pair \[60, 4\]"),
])
def test_pretrain_impossible_architecture_is_refused_before_reading(args, pattern, tmp_path):
    """The text and vocabulary do not even exist: the architecture is refused first."""
    fails(cli("pretrain", tmp_path / "nope", "--vocab", tmp_path / "nope.txt", "-o", tmp_path / "run", *TINY_ARGS["lstm"], *args),
          r"training setting: .*" + pattern)
    assert sorted(tmp_path.iterdir()) == []


def test_pretrain_needs_text_and_vocab_unless_resuming(tmp_path):
    fails(cli("pretrain", "-o", tmp_path / "run"), r"training text and --vocab are required unless --resume", code=2)


def test_pretrain_resume_and_overwrite_together(trained, tmp_path):
    fails(cli("pretrain", "-o", trained / "run", "--resume", "--overwrite"), r"pass one", code=2)


# --- pretrain: run directories ----------------------------------------------------------------

def test_existing_run_is_not_overwritten_without_a_flag(corpus):
    before = snapshot(corpus)
    fails(cli("pretrain", corpus / "train", "--vocab", corpus / "vocab.txt", "-o", corpus / "run", *TINY_ARGS["lstm"]),
          r"run already holds a run; continue it with --resume, replace it with --overwrite")
    assert snapshot(corpus) == before


def test_overwrite_replaces_a_run_as_a_whole(corpus):
    result = cli("pretrain", corpus / "train", "--vocab", corpus / "vocab.txt", "-o", corpus / "run", *TINY_ARGS["lstm"],
                 "--max-steps", "1", "--overwrite")
    assert result.exit_code == 0, result.output
    log = [json.loads(line) for line in (corpus / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1], "one run per log: the old records are gone"
    assert temp_files(corpus) == []


def test_a_directory_that_is_not_a_run_is_never_replaced(trained, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    before = snapshot(tmp_path)
    fails(cli("pretrain", trained / "train", "--vocab", trained / "vocab.txt", "-o", mine, *TINY_ARGS["lstm"], "--overwrite"),
          r"mine exists and is not a spacy-elmo run directory")
    assert snapshot(tmp_path) == before


def test_output_holding_the_training_text_is_refused(corpus):
    before = snapshot(corpus)
    fails(cli("pretrain", corpus / "train", "--vocab", corpus / "vocab.txt", "-o", corpus, *TINY_ARGS["lstm"]),
          r"exists and is not a spacy-elmo run directory")
    (corpus / "train" / "log.jsonl").write_text("")
    fails(cli("pretrain", corpus / "train", "--vocab", corpus / "vocab.txt", "-o", corpus / "train", *TINY_ARGS["lstm"],
              "--overwrite"), r"would overwrite the input")
    assert snapshot(corpus) == {**before, "train/log.jsonl": snapshot(corpus)["train/log.jsonl"]}


def test_failed_new_run_leaves_no_directory(trained, tmp_path):
    tiny = make_corpus(tmp_path / "tiny", n_sentences=3, n_shards=1)
    fails(cli("pretrain", tiny / "train", "--vocab", tiny / "vocab.txt", "-o", tmp_path / "run", *TINY_ARGS["lstm"],
              "--batch-size", "64"), r"one batch needs")
    assert not (tmp_path / "run").exists() and temp_files(tmp_path) == []


def test_missing_vocabulary_leaves_no_directory(trained, tmp_path):
    fails(cli("pretrain", trained / "train", "--vocab", tmp_path / "nope.txt", "-o", tmp_path / "run", *TINY_ARGS["lstm"]),
          r"vocabulary file not found: .*nope\.txt")
    assert not (tmp_path / "run").exists()


def test_init_from_a_garbage_checkpoint(trained, tmp_path):
    (tmp_path / "garbage.pt").write_bytes(os.urandom(3000))
    fails(cli("pretrain", trained / "train", "--vocab", trained / "vocab.txt", "-o", tmp_path / "run", *TINY_ARGS["lstm"],
              "--init-from", tmp_path / "garbage.pt"), r"garbage\.pt: the file is truncated or corrupt")
    assert not (tmp_path / "run").exists()


# --- pretrain: resume -------------------------------------------------------------------------

def test_resume_without_a_checkpoint(tmp_path):
    fails(cli("pretrain", "-o", tmp_path / "run", "--resume"), r"no training checkpoint at .*run; pass a run directory")
    assert not (tmp_path / "run").exists()


def test_resume_with_other_settings_is_refused_listing_them(corpus):
    before = snapshot(corpus)
    line = fails(cli("pretrain", "-o", corpus / "run", "--resume", "--lstm-dim", "32", "--learning-rate", "0.5",
                     "--max-steps", "4"), r"--resume: these settings differ from the run in")
    assert "lstm_dim: run 16, given 32" in line and "learning_rate: run 0.002, given 0.5" in line
    assert "max_steps" not in line, "a resumed run may change how long it runs"
    assert snapshot(corpus) == before


def test_resume_with_another_vocabulary_is_refused(corpus):
    (corpus / "other.txt").write_text("<S>\n</S>\n<UNK>\nzebra\n")
    before = snapshot(corpus)
    fails(cli("pretrain", "-o", corpus / "run", "--resume", "--vocab", corpus / "other.txt"), r"vocab: run '.*vocab\.txt'")
    assert snapshot(corpus) == before


def test_resume_accepts_the_same_vocabulary_elsewhere(corpus):
    shutil.copy(corpus / "vocab.txt", corpus / "copy.txt")
    result = cli("pretrain", "-o", corpus / "run", "--resume", "--vocab", corpus / "copy.txt", "--max-steps", "3")
    assert result.exit_code == 0, result.output


def test_resume_of_a_copied_run_writes_only_the_copy(corpus):
    shutil.copytree(corpus / "run", corpus / "copy")
    original = snapshot(corpus / "run")
    result = cli("pretrain", "-o", corpus / "copy", "--resume", "--max-steps", "3")
    assert result.exit_code == 0, result.output
    assert snapshot(corpus / "run") == original
    assert load_checkpoint(corpus / "copy")["step"] == 3 and load_checkpoint(corpus / "run")["step"] == 2


def test_moved_run_tree_resumes_from_relative_paths(tmp_path):
    """Trained in one place, moved as a whole: the old absolute paths are gone, the relative ones work."""
    root = make_corpus(tmp_path / "here")
    assert cli("pretrain", root / "train", "--vocab", root / "vocab.txt", "-o", root / "run", *TINY_ARGS["lstm"],
               "--max-steps", "1").exit_code == 0
    moved = Path(shutil.move(str(root), str(tmp_path / "there")))
    result = cli("pretrain", "-o", moved / "run", "--resume", "--max-steps", "2")
    assert result.exit_code == 0, result.output
    assert not root.exists() and json.loads((moved / "run" / "log.jsonl").read_text().splitlines()[-1])["step"] == 2


@pytest.mark.parametrize("damage,pattern", [
    (lambda data: b"", r"checkpoint\.pt: the checkpoint is empty \(0 bytes\)"),
    (lambda data: data[: len(data) // 2], r"checkpoint\.pt: the file is truncated or corrupt"),
    (lambda data: os.urandom(len(data)), r"checkpoint\.pt: the file is truncated or corrupt"),
])
def test_resume_from_a_damaged_checkpoint(damage, pattern, corpus):
    ckpt = corpus / "run" / "checkpoint.pt"
    ckpt.write_bytes(damage(ckpt.read_bytes()))
    before = snapshot(corpus)
    fails(cli("pretrain", "-o", corpus / "run", "--resume", "--max-steps", "3"), pattern)
    assert snapshot(corpus) == before


def test_a_torn_last_log_line_is_tolerated_and_repaired(corpus):
    log = corpus / "run" / "log.jsonl"
    log.write_text(log.read_text() + '{"step": 3, "tokens": 40, "lo')
    result = cli("pretrain", "-o", corpus / "run", "--resume", "--max-steps", "4")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3, 4]


def test_a_torn_log_line_before_the_end_is_named(corpus):
    log = corpus / "run" / "log.jsonl"
    lines = log.read_text().splitlines()
    log.write_text(lines[0][:10] + "\n" + "\n".join(lines[1:]) + "\n")
    before = snapshot(corpus)
    fails(cli("pretrain", "-o", corpus / "run", "--resume", "--max-steps", "3"),
          r"log\.jsonl: line 1 is not a JSON record; delete or repair that line")
    assert snapshot(corpus) == before


def test_resume_after_a_shard_was_deleted(corpus):
    (corpus / "train" / "shard-1.txt").unlink()
    fails(cli("pretrain", "-o", corpus / "run", "--resume", "--max-steps", "3"),
          r"not among the 1 training files now found; resume with the run's training files")


def test_log_records_after_the_checkpoint_are_dropped_on_resume(corpus):
    """A crash after logging step 3 but before checkpointing it: step 3 is trained again, logged once."""
    log = corpus / "run" / "log.jsonl"
    log.write_text(log.read_text() + json.dumps({"step": 3, "tokens": 60, "loss": 9.0}) + "\n")
    assert cli("pretrain", "-o", corpus / "run", "--resume", "--max-steps", "3").exit_code == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3] and records[-1]["loss"] != 9.0


def test_checkpoint_options_are_checked_before_the_model_is_built(corpus, tmp_path):
    import torch

    ckpt_file = corpus / "run" / "checkpoint.pt"
    ckpt = torch.load(ckpt_file, weights_only=False)
    ckpt["options"]["lstm"]["n_layers"] = 10**6
    torch.save(ckpt, ckpt_file)
    before = snapshot(corpus)
    fails(cli("evaluate", corpus / "run", corpus / "heldout.txt"), r"option n_layers is 1,000,000, more than 64")
    fails(cli("export", corpus / "run", tmp_path / "export"), r"option n_layers is 1,000,000, more than 64")
    assert snapshot(corpus) == before and not (tmp_path / "export").exists()


# --- the Python API ---------------------------------------------------------------------------

def test_resume_from_python_refuses_other_settings(corpus):
    config = run_config(load_checkpoint(corpus / "run"), corpus / "run")
    with pytest.raises(InputError, match="n_layers: run 2, given 1"):
        train(replace(config, n_layers=1, max_steps=3), resume=True)


def test_spacy_elmo_app_rejects_bad_flags_the_same_way(trained, tmp_path):
    """`spacy elmo ...` runs the same commands inside spaCy's typer app."""
    from spacy.cli._util import app as spacy_app

    import spacy_elmo.cli.spacy_cli  # noqa: F401  (what spaCy's setup_cli loads through the entry point)

    result = CliRunner().invoke(spacy_app, ["elmo", "pretrain", str(trained / "train"), "--vocab",
                                            str(trained / "vocab.txt"), "-o", str(tmp_path / "run"),
                                            "--learning-rate", "nan"])
    bad_flag(result, "--learning-rate", "nan is not a finite number")
    result = CliRunner().invoke(spacy_app, ["elmo", "export", str(tmp_path / "no-run"), str(tmp_path / "out")])
    fails(result, r"no training checkpoint at .*no-run")
    assert sorted(tmp_path.iterdir()) == []
