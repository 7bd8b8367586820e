"""`embed` under torchrun with 2 CPU processes: the merged file equals a single-process run; a rank killed
mid-run leaves its finished parts, and the rerun completes writing only the others."""
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from cli_helpers import cli, fails, snapshot
from spacy_elmo.atomic import TMP_SUFFIX
from spacy_elmo.cli.app import app
from spacy_elmo.cli.embed_parts import part_bounds, parts_dir

from conftest import FIXTURES, ROOT

WORDS = "the cat sat on a mat while dogs barked loudly at night and everyone slept , .".split()
MODEL = ["--options-file", str(FIXTURES / "options.json"), "--weight-file", str(FIXTURES / "lm_weights.hdf5")]


def write_input(path: Path, n_lines: int) -> Path:
    """Random sentences of 0-12 tokens (blank lines included), with repeats for sentence_to_index."""
    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12))) for _ in range(n_lines)]
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    return path


def torchrun_cmd(args):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "spacy_elmo", "embed", *args]


def run_env():
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))


def torchrun(args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(torchrun_cmd(args), cwd=cwd, env=run_env(), capture_output=True, text=True, timeout=300)


def parts_written(stderr: str) -> int:
    found = re.findall(r"rank (\d)/2: (\d+) parts? written", stderr)
    assert sorted(rank for rank, _ in found) == ["0", "1"], stderr[-3000:]
    return sum(int(n) for _, n in found)


def assert_same_file(single: Path, merged: Path) -> None:
    with h5py.File(single, "r") as a, h5py.File(merged, "r") as b:
        assert sorted(a) == sorted(b)
        assert a["sentence_to_index"][0] == b["sentence_to_index"][0]
        for name in a:
            if name != "sentence_to_index":
                assert a[name].shape == b[name].shape and a[name].dtype == b[name].dtype
                # equal up to the char-CNN cache: a token's vector is computed in whichever batch first met it
                np.testing.assert_allclose(a[name][()], b[name][()], rtol=0, atol=1e-5)


def single_run(source: Path, output: Path, *flags: str) -> None:
    result = CliRunner().invoke(app, ["embed", str(source), str(output), *MODEL, *flags])
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    source = write_input(tmp_path / "in.txt", 300)
    single_run(source, tmp_path / "single.hdf5", "--batch-size", "2", "--layers", "average")
    done = torchrun([str(source), "merged.hdf5", *MODEL, "--batch-size", "2", "--part-lines", "40",
                     "--layers", "average"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert parts_written(done.stderr) == len(part_bounds(300, 40, 32)) == 5
    assert_same_file(tmp_path / "single.hdf5", tmp_path / "merged.hdf5")
    assert not parts_dir(tmp_path / "merged.hdf5").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(TMP_SUFFIX)]


def wait_for_parts(directory: Path, process: subprocess.Popen, n_done: int) -> int:
    """The pid of a rank writing a part once `n_done` parts are finished."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if directory.is_dir():
            names = [p.name for p in directory.iterdir()]
            writing = [n for n in names if n.endswith(TMP_SUFFIX)]
            if len([n for n in names if n.endswith(".hdf5")]) >= n_done and writing:
                return int(writing[0].split(".hdf5.")[1].split(".")[0])
        time.sleep(0.01)
    raise AssertionError(f"no rank was writing part {n_done + 1}: {process.communicate()[1][-3000:]}")


@pytest.mark.slow
def test_killed_rank_rerun_skips_finished_parts(tmp_path):
    source = write_input(tmp_path / "in.txt", 1200)
    args = [str(source), "out.hdf5", *MODEL, "--batch-size", "2", "--part-lines", "32", "--layers", "top"]
    directory = parts_dir(tmp_path / "out.hdf5")
    process = subprocess.Popen(torchrun_cmd(args), cwd=tmp_path, env=run_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        os.kill(wait_for_parts(directory, process, 4), signal.SIGKILL)
        process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode != 0
    assert not (tmp_path / "out.hdf5").exists()
    finished = {p.name: p.stat().st_mtime_ns for p in directory.glob("part-*.hdf5")}
    total = len(part_bounds(1200, 32, 32))
    assert 4 <= len(finished) < total

    rerun = torchrun(args, tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert parts_written(rerun.stderr) == total - len(finished)
    single_run(source, tmp_path / "single.hdf5", "--batch-size", "2", "--layers", "top")
    assert_same_file(tmp_path / "single.hdf5", tmp_path / "out.hdf5")
    assert not directory.exists()


def as_rank(monkeypatch, rank: int, rendezvous: bool = True) -> None:
    """This process as rank `rank` of 2, with or without torchrun's rendezvous address."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", str(rank))
    for name, value in (("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")):
        if rendezvous:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)


@pytest.mark.slow
def test_rerun_with_other_settings_redoes_the_parts(tmp_path, monkeypatch):
    """Parts are stamped with the input, model and settings: a part of another job is never merged."""
    source = write_input(tmp_path / "in.txt", 100)
    monkeypatch.chdir(tmp_path)
    as_rank(monkeypatch, 1)
    monkeypatch.setattr("spacy_elmo.cli.embed_parts.barrier", lambda: None)
    flags = [str(source), "out.hdf5", *MODEL, "--batch-size", "2", "--part-lines", "32"]
    first = CliRunner().invoke(app, ["embed", *flags, "--layers", "top"])
    assert first.exit_code == 0 and "rank 1/2: 2 parts written" in first.output, first.output
    again = CliRunner().invoke(app, ["embed", *flags, "--layers", "top"])
    assert "rank 1/2: 0 parts written" in again.output, again.output
    other = CliRunner().invoke(app, ["embed", *flags, "--layers", "average"])
    assert "rank 1/2: 2 parts written" in other.output, other.output


@pytest.mark.parametrize("flags, message", [
    (["-", "out.hdf5"], "a stream (-) allows only once: give a regular file"),
    (["in.fifo", "out.hdf5"], "a stream (in.fifo) allows only once: give a regular file"),
    (["in.txt", "out.hdf5", "--stateful"], "--stateful carries the LSTM state"),
])
def test_what_processes_cannot_share_is_one_error(tmp_path, monkeypatch, flags, message):
    write_input(tmp_path / "in.txt", 10)
    os.mkfifo(tmp_path / "in.fifo")
    monkeypatch.chdir(tmp_path)
    as_rank(monkeypatch, 0)
    result = CliRunner().invoke(app, ["embed", *flags, *MODEL])
    assert result.exit_code == 1 and message in result.output, result.output
    assert result.output.count("Error:") == 1 and not (tmp_path / "out.hdf5.parts").exists()


def test_a_distributed_environment_without_torchrun_is_refused_before_any_work(tmp_path, monkeypatch):
    """WORLD_SIZE=2 RANK=0 without MASTER_ADDR/MASTER_PORT: rank 0 used to embed its share, leave
    OUT.parts/ behind and end in an unexpected ValueError."""
    source = write_input(tmp_path / "in.txt", 100)
    as_rank(monkeypatch, 0, rendezvous=False)
    before = snapshot(tmp_path)
    fails(cli("embed", source, tmp_path / "out.hdf5", *MODEL, "--part-lines", "32"),
          r"WORLD_SIZE=2 says this is one of 2 processes, but MASTER_ADDR and MASTER_PORT are not set: .*torchrun")
    assert snapshot(tmp_path) == before
