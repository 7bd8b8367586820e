"""Bad input and faults of the training commands (prepare, vocab, pretrain, evaluate, export) through the
command line, in-process: every case exits non-zero with one `Error:` line naming the file, option or
value, never a traceback, and loses or leaves nothing. Exit status 2 is click's for a bad flag value.
"""
import errno
import json
import os
import shutil
import stat
from dataclasses import replace
from pathlib import Path

import h5py
import pytest
from typer.testing import CliRunner

from cli_helpers import bad_flag, cli, fails, snapshot, temp_files
from spacy_elmo import load_bilm
from spacy_elmo.bilm.weights import _official_tensors
from spacy_elmo.errors import InputError, WeightsError
from spacy_elmo.training import vocab
from spacy_elmo.training.checkpoint import load_checkpoint, run_config
from spacy_elmo.training.trainer import train

from .helpers import TINY_ARGS, make_corpus


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("the cat sat .\na dog .\n", encoding="utf8")
    return path


# --- integrity: export checksums --------------------------------------------------------------

def test_exported_weights_carry_checksums_official_readers_ignore(corpus, tmp_path):
    """Root attributes only: the datasets are exactly the official ones, so AllenNLP/bilm-tf read it unchanged."""
    assert cli("export", corpus / "run", tmp_path / "export").exit_code == 0
    bilm = load_bilm(tmp_path / "export" / "options.json", tmp_path / "export" / "weights.hdf5")
    datasets, attributes = set(), []

    def visit(name, obj):
        attributes.extend(obj.attrs)
        if isinstance(obj, h5py.Dataset):
            datasets.add(name)

    with h5py.File(tmp_path / "export" / "weights.hdf5", "r") as f:
        assert sorted(f.attrs) == ["spacy_elmo_options_sha256", "spacy_elmo_weights_sha256"]
        f.visititems(visit)
    assert datasets == {name for name, _ in _official_tensors(bilm)} and attributes == []


def test_flipped_weight_is_a_checksum_error(corpus, tmp_path, text):
    assert cli("export", corpus / "run", tmp_path / "export").exit_code == 0
    with h5py.File(tmp_path / "export" / "weights.hdf5", "r+") as f:
        f["char_embed"][5, 0] += 1e-3
    fails(cli("embed", text, tmp_path / "out.hdf5", "--options-file", tmp_path / "export" / "options.json",
              "--weight-file", tmp_path / "export" / "weights.hdf5"),
          r"weights\.hdf5: checksum mismatch: the weights changed after they were written")


def test_weights_with_other_options_is_a_checksum_error(corpus, tmp_path):
    assert cli("export", corpus / "run", tmp_path / "export").exit_code == 0
    options = json.loads((tmp_path / "export" / "options.json").read_text())
    options["lstm"]["cell_clip"] = 5.0
    (tmp_path / "export" / "options.json").write_text(json.dumps(options))
    with pytest.raises(WeightsError, match="written with different options than the options file given"):
        load_bilm(tmp_path / "export" / "options.json", tmp_path / "export" / "weights.hdf5")


# --- export -----------------------------------------------------------------------------------

def test_export_refuses_an_existing_directory_without_overwrite(corpus, tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    fails(cli("export", corpus / "run", out), r"export already exists; choose another output or pass --overwrite")
    assert snapshot(tmp_path) == before
    assert cli("export", corpus / "run", out, "--overwrite").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["options.json", "vocab.txt", "weights.hdf5"]
    assert temp_files(tmp_path) == []


def test_an_lstm_run_is_not_exported_to_an_archive_name(corpus, tmp_path):
    """An LSTM export is a folder: asked for lstm.tar.gz, export used to make a folder of that name."""
    before = snapshot(tmp_path)
    fails(cli("export", corpus / "run", tmp_path / "lstm.tar.gz"),
          r"lstm\.tar\.gz: an LSTM run exports to a folder \(options\.json, weights\.hdf5, vocab\.txt\), not an archive")
    assert snapshot(tmp_path) == before


def test_export_into_the_run_directory_is_refused(corpus):
    before = snapshot(corpus)
    fails(cli("export", corpus / "run", corpus / "run", "--overwrite"), r"would overwrite the input")
    assert snapshot(corpus) == before


def test_export_of_a_corrupt_checkpoint(corpus, tmp_path):
    ckpt = corpus / "run" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:5000])
    fails(cli("export", corpus / "run", tmp_path / "export"), r"checkpoint\.pt: the file is truncated or corrupt")
    assert not (tmp_path / "export").exists() and temp_files(tmp_path) == []


def test_export_of_a_directory_without_a_run(tmp_path):
    (tmp_path / "empty").mkdir()
    fails(cli("export", tmp_path / "empty", tmp_path / "export"), r"no training checkpoint at .*checkpoint\.pt")
    assert not (tmp_path / "export").exists()


def test_export_failure_midway_leaves_no_directory(corpus, tmp_path, monkeypatch):
    def full(self, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(vocab.Vocab, "to_file", full)
    fails(cli("export", corpus / "run", tmp_path / "export"), r"vocab\.txt: No space left on device: the disk is full")
    assert not (tmp_path / "export").exists() and temp_files(tmp_path) == []


# --- prepare and vocab ------------------------------------------------------------------------

@pytest.mark.parametrize("args,flag,shown", [
    (["--n-shards", "0"], "--n-shards", "0 is not an integer >= 1"),
    (["--n-process", "0"], "--n-process", "0 is not an integer >= 1"),
    (["--format", "pdf"], "--format", "'pdf' is not one of raw, lines, tokens"),
    (["--seed", "-1"], "--seed", "-1 is not an integer >= 0"),
])
def test_prepare_bad_flag_values(args, flag, shown, text, tmp_path):
    before = snapshot(tmp_path)
    bad_flag(cli("prepare", text, "-o", tmp_path / "shards", *args), flag, shown)
    assert snapshot(tmp_path) == before


def test_prepare_refuses_to_write_over_its_input(tmp_path):
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("The cat sat. The dog ran.\n")
    before = snapshot(tmp_path)
    fails(cli("prepare", texts, "-o", texts, "--overwrite"), r"--output .*texts would overwrite the input")
    assert snapshot(tmp_path) == before


def test_prepare_existing_output_needs_overwrite_and_is_replaced_whole(tmp_path):
    (tmp_path / "a.txt").write_text(" ".join(["The cat sat on the mat."] * 40) + "\n")
    assert cli("prepare", tmp_path / "a.txt", "-o", tmp_path / "shards", "--n-shards", "3").exit_code == 0
    before = snapshot(tmp_path)
    fails(cli("prepare", tmp_path / "a.txt", "-o", tmp_path / "shards", "--n-shards", "2"),
          r"the --output .*shards already exists; choose another --output or pass --overwrite")
    assert snapshot(tmp_path) == before
    assert cli("prepare", tmp_path / "a.txt", "-o", tmp_path / "shards", "--n-shards", "2", "--overwrite").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["shard-00000.txt", "shard-00001.txt"]
    assert temp_files(tmp_path) == []


def test_prepare_failure_midway_leaves_no_shards(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text(" ".join(["The cat sat on the mat."] * 40) + "\n")
    real, calls = Path.write_text, []

    def second_fails(self, *args, **kwargs):
        calls.append(self)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", second_fails)
    fails(cli("prepare", tmp_path / "a.txt", "-o", tmp_path / "shards", "--n-shards", "3"), r"the disk is full")
    assert not (tmp_path / "shards").exists() and temp_files(tmp_path) == []


@pytest.mark.parametrize("content,pattern", [
    (b"", r"the file is empty"),
    (b"abc\x00def", r"looks like a binary file"),
    (b"caf\xe9 au lait\n", r"not valid UTF-8 \(bad byte at offset 3\)"),
])
def test_prepare_bad_text(content, pattern, tmp_path):
    (tmp_path / "bad.txt").write_bytes(content)
    fails(cli("prepare", tmp_path / "bad.txt", "-o", tmp_path / "shards"), r"bad\.txt: " + pattern)
    assert not (tmp_path / "shards").exists()


def test_prepare_missing_input_and_unknown_language(text, tmp_path):
    fails(cli("prepare", tmp_path / "nope", "-o", tmp_path / "shards"), r"no text files found at .*nope")
    fails(cli("prepare", text, "-o", tmp_path / "shards", "--lang", "xx-not-a-language"), r"no spaCy language 'xx-not")
    assert not (tmp_path / "shards").exists()


def test_vocab_bad_flags_and_overwriting_an_input(text, tmp_path):
    bad_flag(cli("vocab", text, "-o", tmp_path / "v.txt", "--max-size", "3"), "--max-size", "3 is not an integer >= 4")
    bad_flag(cli("vocab", text, "-o", tmp_path / "v.txt", "--min-count", "0"), "--min-count", "0 is not")
    before = snapshot(tmp_path)
    fails(cli("vocab", text, "-o", text), r"would overwrite the input")
    assert snapshot(tmp_path) == before


def test_vocab_replaces_a_file_whole_keeping_its_mode(text, tmp_path):
    out = tmp_path / "vocab.txt"
    out.write_text("old\n")
    out.chmod(0o600)
    assert cli("vocab", text, "-o", out).exit_code == 0
    assert out.read_text().split("\n")[:3] == ["<S>", "</S>", "<UNK>"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and temp_files(tmp_path) == []


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
    assert "lstm_dim: run 16, given 32" in line and "learning_rate: run 0.2, given 0.5" in line
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


# --- evaluate ---------------------------------------------------------------------------------

def test_evaluate_errors(trained, tmp_path):
    bad_flag(cli("evaluate", trained / "run", trained / "heldout.txt", "--batch-size", "0"), "--batch-size", "0 is not")
    fails(cli("evaluate", tmp_path / "nothing", trained / "heldout.txt"), r"no training checkpoint at")
    fails(cli("evaluate", trained / "run", tmp_path / "missing.txt"), r"no text files found at .*missing\.txt")
    (tmp_path / "short.txt").write_text("the cat .\n")
    fails(cli("evaluate", trained / "run", tmp_path / "short.txt"), r"held-out text .* is smaller than one batch")


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


def test_an_empty_output_directory_is_used(tmp_path):
    (tmp_path / "a.txt").write_text(" ".join(["The cat sat on the mat."] * 10) + "\n")
    (tmp_path / "shards").mkdir()
    assert cli("prepare", tmp_path / "a.txt", "-o", tmp_path / "shards", "--n-shards", "2").exit_code == 0
    assert len(list((tmp_path / "shards").iterdir())) == 2
