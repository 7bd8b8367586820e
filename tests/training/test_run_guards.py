"""A run never trains other weights than it says, and its failures name their cause (issue 25): size flags
against --init-from, a checkpoint of another size put into a run, divergence, a full disk at a checkpoint."""
import errno
import hashlib
import json
import math
import shutil

import pytest
import torch

from cli_helpers import cli, fails, one_error, run, temp_files
from spacy_elmo.training.checkpoint import load_checkpoint
from spacy_elmo.training.trainer import train

from .helpers import KINDS, TINY_ARGS, tiny_config


def pretrain(root, *args):
    return cli("pretrain", root / "train", "--vocab", root / "vocab.txt", *args)


@pytest.mark.parametrize("flags,named", [
    (["--lstm-dim", "64", "--projection-dim", "32"], r"--lstm-dim 64 \(it has 16\), --projection-dim 32 \(it has 8\)"),
    (["--lstm-dim", "512"], r"--lstm-dim 512 \(it has 16\)"),  # the default, but asked for
    (["--filters", "1:4,2:8"], r"--filters 1:4,2:8 \(it has 1:4,2:4\)"),
    (["--char-dim", "8"], r"--char-dim 8 \(it has 4\)"),
])
def test_init_from_refuses_size_flags_that_differ_from_the_source(corpus, tmp_path, flags, named):
    fails(pretrain(corpus, "-o", tmp_path / "new", "--init-from", corpus / "run", "--max-steps", 1, *flags),
          rf"--init-from .*run brings its own biLM, whose sizes differ from {named}; drop those flags")
    assert not (tmp_path / "new").exists()


def test_init_from_records_the_sources_sizes(corpus, tmp_path):
    """Size flags that agree are fine; the new run's stored settings are the sizes its weights have."""
    result = pretrain(corpus, "-o", tmp_path / "new", "--init-from", corpus / "run", "--max-steps", 1,
                      "--lstm-dim", 16, "--projection-dim", 8, "--batch-size", 4, "--unroll-steps", 5, "--threads", 1)
    assert result.exit_code == 0, result.output
    config = load_checkpoint(tmp_path / "new")["config"]
    assert (config["lstm_dim"], config["projection_dim"], config["filters"], config["char_embedding_dim"]) == \
        (16, 8, [[1, 4], [2, 4]], 4)


def test_resume_refuses_a_checkpoint_of_another_size(corpus, tmp_path):
    other = tiny_config(corpus, max_steps=1, heldout=[], output=str(tmp_path / "other"), lstm_dim=24,
                        projection_dim=12)
    train(other)
    shutil.copy(tmp_path / "other" / "checkpoint.pt", corpus / "run" / "checkpoint.pt")
    before = hashlib.sha256((corpus / "run" / "checkpoint.pt").read_bytes()).hexdigest()
    fails(cli("pretrain", "-o", corpus / "run", "--resume", "--max-steps", 3),
          r"--resume: the checkpoint in .*run holds another biLM than the run's train_options\.json describes "
          r"\(lstm\.dim 24 in checkpoint\.pt, 16 in train_options\.json; lstm\.projection_dim 12 in checkpoint\.pt, "
          r"8 in train_options\.json; .*\); put back the run's own checkpoint\.pt")
    assert hashlib.sha256((corpus / "run" / "checkpoint.pt").read_bytes()).hexdigest() == before


def test_both_kinds_write_their_kind_into_train_options(runs):
    assert {bilm: json.loads((runs / bilm / "train_options.json").read_text())["kind"] for bilm in KINDS} == \
        {bilm: bilm for bilm in KINDS}


def test_a_run_whose_train_options_name_no_kind_resumes_as_lstm(corpus):
    """Runs made before both kinds wrote their kind: train_options.json without one is an LSTM's."""
    path = corpus / "run" / "train_options.json"
    options = json.loads(path.read_text())
    del options["kind"]
    path.write_text(json.dumps(options))
    result = cli("pretrain", "-o", corpus / "run", "--resume", "--max-steps", 3)
    assert result.exit_code == 0, result.output
    assert load_checkpoint(corpus / "run")["step"] == 3


def test_a_diverging_run_stops_with_the_step_and_a_lower_learning_rate(corpus, tmp_path):
    """Adam at learning rate 1000 sends the loss past what exp() can take within a few steps."""
    result = pretrain(corpus, "-o", tmp_path / "run", *TINY_ARGS["lstm"], "--max-steps", 40, "--optimizer", "adam",
                      "--learning-rate", 1000, "--clip-norm", 1e9)
    fails(result, r"the training loss became \S+ at step \d+: the run diverged; start again with a lower "
                  r"--learning-rate \(now 1000\)")
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["step"] == 1 and temp_files(tmp_path) == []


def test_a_perplexity_beyond_a_float_is_inf():
    from spacy_elmo.training.trainer import perplexities

    found = perplexities(torch.tensor([2000.0, 1.0]))
    assert found["ppl"] == found["fwd_ppl"] == math.inf and found["bwd_ppl"] == pytest.approx(math.e)


def checkpoint_digest(run_dir):
    return hashlib.sha256((run_dir / "checkpoint.pt").read_bytes()).hexdigest()


@pytest.mark.parametrize("failure", [
    RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"),
    OSError(errno.ENOSPC, "No space left on device"),
])
def test_a_full_disk_at_a_checkpoint_says_so_and_keeps_the_previous_one(corpus, monkeypatch, failure):
    before = checkpoint_digest(corpus / "run")

    def full(obj, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise failure

    monkeypatch.setattr(torch, "save", full)
    fails(cli("pretrain", "-o", corpus / "run", "--resume", "--max-steps", 3),
          r"no space left on device: cannot write the checkpoint .*run/checkpoint\.pt \(.*the disk is full or a file "
          r"size limit was hit\); the run's previous checkpoint, if any, is intact: free some space and continue "
          r"with --resume")
    assert checkpoint_digest(corpus / "run") == before and temp_files(corpus) == []


def test_a_real_file_size_limit_at_a_checkpoint(corpus):
    before = checkpoint_digest(corpus / "run")
    limit = (corpus / "run" / "checkpoint.pt").stat().st_size // 2
    result = run("pretrain", "-o", corpus / "run", "--resume", "--max-steps", 3, limit_bytes=limit)
    assert result.returncode == 1, result.stderr[-2000:]
    one_error(result.stderr, r"no space left on device: cannot write the checkpoint .*run/checkpoint\.pt")
    assert checkpoint_digest(corpus / "run") == before and temp_files(corpus) == []
