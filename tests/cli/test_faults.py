"""Faults of `embed` that need a real process: a full disk (RLIMIT_FSIZE), signals, and `spacy elmo` itself
(those of the training commands are in training/test_faults.py).

Each case checks the exit status, the one `Error:` line, that no traceback, segfault or
"Exception ignored" flood happened, and that no partial output or temp file was left behind.
"""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import child_env, one_error, run, snapshot, start, temp_files
from spacy_elmo.atomic import TMP_SUFFIX


@pytest.fixture
def big_text(tmp_path):
    """Lines enough that a run is still writing when the test signals it: the tests wait for the
    output's first 4 KiB (wait_for_temp) of what would be about 100 MB."""
    path = tmp_path / "big.txt"
    path.write_text("".join(f"the cat sat on the mat with a hat and a bat {i}\n" for i in range(20000)))
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


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130),
                                          pytest.param(signal.SIGTERM, 143, marks=pytest.mark.slow)])
def test_signal_during_embed_exits_non_zero_and_leaves_nothing(signum, code, big_text, model, tmp_path):
    proc = start("embed", big_text, tmp_path / "out.hdf5", *model)
    wait_for_temp(tmp_path)
    assert proc.poll() is None, "embed finished before it could be interrupted: give it more lines"
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


def spacy_cli(*args):
    return subprocess.run([sys.executable, "-m", "spacy", "elmo", *map(str, args)], capture_output=True, text=True,
                          env=child_env(), timeout=300)


def test_spacy_elmo_command_has_the_same_boundary(model, tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("a b c\n")
    before = snapshot(tmp_path)
    result = spacy_cli("embed", text, text, *model)
    assert result.returncode == 1
    one_error(result.stderr, r"in\.txt would overwrite the input")
    assert result.stderr.strip().startswith("Error:") and len(result.stderr.strip().splitlines()) == 1
    assert snapshot(tmp_path) == before
