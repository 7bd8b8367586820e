"""Faults that need a real process: a full disk (RLIMIT_FSIZE), signals, and `spacy elmo` itself.

Each case checks the exit status, the one `Error:` line, that no traceback, segfault or
"Exception ignored" flood happened, and that no partial output or temp file was left behind.
"""
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spacy_elmo.atomic import TMP_SUFFIX
from test_errors import TINY, snapshot, temp_files
from test_trainer import make_corpus

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def run(*args, limit_bytes=None, cwd=None):
    """`python -m spacy_elmo ARGS` in a subprocess, optionally under a file size limit."""

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "spacy_elmo", *map(str, args)], capture_output=True, text=True,
                          env=ENV, cwd=cwd, preexec_fn=limit if limit_bytes else None, timeout=300)


def start(*args):
    return subprocess.Popen([sys.executable, "-m", "spacy_elmo", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def one_error(stderr: str, pattern: str) -> None:
    import re

    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and re.search(pattern, errors[0]), stderr[-3000:]


@pytest.fixture
def big_text(tmp_path):
    """Enough lines that embedding them with the tiny fixture model takes several seconds."""
    path = tmp_path / "big.txt"
    path.write_text("".join(f"the cat sat on the mat with a hat and a bat {i}\n" for i in range(5000)))
    return path


@pytest.fixture
def model(fixture_dir):
    return ["--options-file", fixture_dir / "options.json", "--weight-file", fixture_dir / "lm_weights.hdf5"]


def wait_for_temp(directory: Path, min_bytes: int = 4096, timeout: float = 120) -> Path:
    """The temp file of a running embed, once it is being written."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for path in directory.glob(f".*{TMP_SUFFIX}"):
            if path.is_file() and path.stat().st_size >= min_bytes:
                return path
        time.sleep(0.05)
    raise AssertionError("the command never started writing")


def test_disk_full_during_embed(big_text, model, tmp_path):
    (tmp_path / "out.hdf5").write_bytes(b"earlier results")
    result = run("embed", big_text, tmp_path / "out.hdf5", *model, "--overwrite", limit_bytes=200_000)
    assert result.returncode == 1, result.stderr[-2000:]
    one_error(result.stderr, r"out\.hdf5: File too large: the disk is full \(or a file size limit was hit\)")
    assert (tmp_path / "out.hdf5").read_bytes() == b"earlier results" and temp_files(tmp_path) == []


def test_disk_full_during_export(tmp_path):
    from spacy_elmo.training.trainer import train
    from test_trainer import tiny_config

    root = make_corpus(tmp_path / "corpus")
    train(tiny_config(root, max_steps=1, heldout=[]))
    result = run("export", root / "run", tmp_path / "export", limit_bytes=4096)
    assert result.returncode == 1, result.stderr[-2000:]
    one_error(result.stderr, r"weights\.hdf5: File too large: the disk is full")
    assert not (tmp_path / "export").exists() and temp_files(tmp_path) == []


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_embed_exits_non_zero_and_leaves_nothing(signum, code, big_text, model, tmp_path):
    proc = start("embed", big_text, tmp_path / "out.hdf5", *model)
    wait_for_temp(tmp_path)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr[-2000:]
    one_error(stderr, rf"interrupted \({signal.Signals(signum).name}\); no partial output was left behind")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.txt"]


@pytest.mark.slow
def test_killed_embed_leaves_a_temp_file_the_next_run_removes(big_text, model, tmp_path):
    proc = start("embed", big_text, tmp_path / "out.hdf5", *model)
    leftover = wait_for_temp(tmp_path)
    proc.kill()
    proc.wait()
    assert leftover.exists() and not (tmp_path / "out.hdf5").exists()
    (tmp_path / "small.txt").write_text("a b c\n")
    result = run("embed", tmp_path / "small.txt", tmp_path / "out.hdf5", *model)
    assert result.returncode == 0, result.stderr
    assert f"removed {leftover}, left behind by an interrupted run (pid {proc.pid})" in result.stderr
    assert temp_files(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_pretrain_checkpoints_and_exits_non_zero(signum, code, tmp_path):
    root = make_corpus(tmp_path / "corpus")
    proc = start("pretrain", root / "train", "--vocab", root / "vocab.txt", "-o", root / "run", *TINY,
                 "--max-steps", "100000")
    log = root / "run" / "log.jsonl"
    deadline = time.time() + 120
    while not (log.exists() and len(log.read_text().splitlines()) >= 3) and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr[-2000:]
    assert "Traceback" not in stderr
    assert f"interrupted ({signal.Signals(signum).name}) at step" in stderr and "--resume" in stderr
    from spacy_elmo.training.trainer import load_checkpoint, run_config, train

    ckpt = load_checkpoint(root / "run")
    assert ckpt["step"] == json.loads(log.read_text().splitlines()[-1])["step"] >= 3
    assert temp_files(tmp_path) == []
    if signum == signal.SIGINT:
        config = run_config(ckpt, root / "run")
        config.max_steps, config.progress = ckpt["step"] + 1, False
        assert train(config, resume=True)["step"] == ckpt["step"] + 1


def spacy_cli(*args):
    return subprocess.run([sys.executable, "-m", "spacy", "elmo", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=300)


def test_spacy_elmo_command_has_the_same_boundary(model, tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("a b c\n")
    before = snapshot(tmp_path)
    result = spacy_cli("embed", text, text, *model)
    assert result.returncode == 1
    one_error(result.stderr, r"in\.txt would overwrite the input")
    assert result.stderr.strip().startswith("Error:") and len(result.stderr.strip().splitlines()) == 1
    assert snapshot(tmp_path) == before
