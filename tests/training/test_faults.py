"""Faults of the training commands that need a real process: a full disk (RLIMIT_FSIZE) and signals.

A signal is sent once the run has logged three steps (the event the test waits for, whatever the
machine's speed); the run then checkpoints the step it is in and stops.
"""
import json
import signal
import subprocess
import sys
from dataclasses import asdict

import pytest

from cli_helpers import child_env, one_error, run, start, temp_files, wait_for
from spacy_elmo.training.checkpoint import load_checkpoint, run_config
from spacy_elmo.training.trainer import train

from .helpers import TINY_ARGS, log_records, make_corpus, tiny_config


def test_disk_full_during_export(tmp_path):
    root = make_corpus(tmp_path / "corpus")
    train(tiny_config(root, max_steps=1, heldout=[]))
    result = run("export", root / "run", tmp_path / "export", limit_bytes=4096)
    assert result.returncode == 1, result.stderr[-2000:]
    one_error(result.stderr, r"weights\.hdf5: File too large: the disk is full")
    assert not (tmp_path / "export").exists() and temp_files(tmp_path) == []


def python_train(config) -> subprocess.Popen:
    """`train(config)` from Python in a process of its own."""
    script = ("import json, sys; from spacy_elmo.training.config import TrainConfig; "
              "from spacy_elmo.training.trainer import train; train(TrainConfig(**json.loads(sys.argv[1])))")
    return subprocess.Popen([sys.executable, "-c", script, json.dumps(asdict(config))], env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("entry,signum,code", [
    ("pretrain", signal.SIGINT, 130),
    pytest.param("pretrain", signal.SIGTERM, 143, marks=pytest.mark.slow),
    pytest.param("python", signal.SIGINT, 0, marks=pytest.mark.slow),
])
def test_a_signal_checkpoints_the_current_step_and_stops(tmp_path, entry, signum, code):
    root = make_corpus(tmp_path / "corpus")
    if entry == "pretrain":
        proc = start("pretrain", root / "train", "--vocab", root / "vocab.txt", "-o", root / "run",
                     *TINY_ARGS["lstm"], "--max-steps", "100000")
    else:
        proc = python_train(tiny_config(root, max_steps=100_000, heldout=[]))
    log = root / "run" / "log.jsonl"
    wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= 3, "three logged steps")
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr[-2000:]
    assert "Traceback" not in stderr
    if entry == "pretrain":
        assert f"interrupted ({signal.Signals(signum).name}) at step" in stderr and "--resume" in stderr
    ckpt = load_checkpoint(root / "run")
    assert ckpt["step"] == log_records(root / "run")[-1]["step"] >= 3
    assert temp_files(tmp_path) == []
    if signum == signal.SIGINT and entry == "pretrain":
        config = run_config(ckpt, root / "run")
        config.max_steps, config.progress = ckpt["step"] + 1, False
        assert train(config, resume=True)["step"] == ckpt["step"] + 1
