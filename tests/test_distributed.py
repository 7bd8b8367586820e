import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_trainer import make_corpus

from spacy_elmo.training.trainer import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def torchrun(args, root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "spacy_elmo", "pretrain", *args]
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_two_process_ddp_training_checkpoints_and_resumes(tmp_path):
    root = make_corpus(tmp_path, n_shards=4)
    run = tmp_path / "run"
    args = [str(root / "train"), "--vocab", str(root / "vocab.txt"), "-o", str(run), "--lstm-dim", "32",
            "--projection-dim", "16", "--filters", "1:8,2:8", "--char-dim", "4", "--batch-size", "4",
            "--unroll-steps", "5", "--n-negative-samples", "8", "--max-steps", "6", "--log-every", "2",
            "--threads", "1"]
    done = torchrun(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = load_checkpoint(run)
    assert ckpt["step"] == 6 and ckpt["tokens"] == 6 * 4 * 5 * 2
    for r in ckpt["ranks"]:  # shards are saved as indices into the rank's own files: 2 of the 4 each
        stream = r["fwd"]["stream"]
        assert {stream["current"], *stream["queue"]} <= {0, 1}
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 6]
    resumed = torchrun(["-o", str(run), "--resume", "--max-steps", "8"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert load_checkpoint(run)["step"] == 8
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()] == [2, 4, 6, 8]
