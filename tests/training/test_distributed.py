"""pretrain under torchrun (2 CPU processes, gloo), for both biLM kinds; and a distributed environment
without torchrun's rendezvous, refused before any work."""
import pytest

from cli_helpers import cli, fails, snapshot
from spacy_elmo.training.checkpoint import load_checkpoint

from .helpers import KINDS, TINY, log_records, make_corpus, torchrun

BATCH, STEPS = 4, 4
UNROLL = {"lstm": 5, "transformer": 12}


def streams(state):
    """The sentence-stream positions inside one rank's saved batches, whatever their layout."""
    if isinstance(state, dict):
        return [state["stream"]] if "stream" in state else [s for value in state.values() for s in streams(value)]
    return []


@pytest.mark.slow
@pytest.mark.parametrize("bilm", KINDS)
def test_two_process_training_checkpoints_and_resumes(tmp_path, bilm):
    root = make_corpus(tmp_path, n_shards=4)
    run = tmp_path / "run"
    args = [root / "train", "--vocab", root / "vocab.txt", "-o", run, *TINY[bilm], "--filters", "1:8,2:8",
            "--char-dim", "4", "--batch-size", BATCH, "--n-negative-samples", "8", "--max-steps", STEPS,
            "--log-every", "2", "--threads", "1"]
    done = torchrun(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = load_checkpoint(run)
    assert ckpt["step"] == STEPS and len(ckpt["ranks"]) == 2
    for rank in ckpt["ranks"]:  # each rank reads its own 2 of the 4 shards, saved as indices into them
        assert all({s["current"], *s["queue"]} <= {0, 1} for s in streams(rank)) and streams(rank)
    # real tokens (no padding) of both ranks: more than one rank can read, at most what both can
    one_rank = STEPS * BATCH * UNROLL[bilm]
    assert ckpt["tokens"] == log_records(run)[-1]["tokens"] and one_rank < ckpt["tokens"] <= 2 * one_rank
    assert [r["step"] for r in log_records(run)] == [2, 4]
    resumed = torchrun(["-o", run, "--resume", "--max-steps", STEPS + 2], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert load_checkpoint(run)["step"] == STEPS + 2
    assert [r["step"] for r in log_records(run)] == [2, 4, 6]


def test_a_distributed_environment_without_torchrun_is_refused_before_any_work(tmp_path, monkeypatch):
    """WORLD_SIZE=2 RANK=0 without MASTER_ADDR/MASTER_PORT: one line that says what is missing, and no run."""
    root = make_corpus(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    before = snapshot(tmp_path)
    fails(cli("pretrain", root / "train", "--vocab", root / "vocab.txt", "-o", tmp_path / "run", *TINY["lstm"]),
          r"WORLD_SIZE=2 says this is one of 2 processes, but MASTER_ADDR and MASTER_PORT are not set: .*torchrun")
    assert snapshot(tmp_path) == before
