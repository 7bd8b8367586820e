"""scripts/train_stage3.py, the step that made the shipped biLM weights (`make stage3-train`), runs its whole
recipe on CPU on a tiny corpus: smoke run, softmax warm-up, scores before, training, scores after, export."""
import json
import math
import sys

import pytest

from cli_helpers import run
from conftest import ROOT, SAMPLES
from spacy_elmo.bilm.weights import load_lstm_bilm

BOOKS = SAMPLES / "gutenberg-en" / "texts"


def tokenised_lines(path, limit=None):
    lines = [" ".join(line.split()) for line in path.read_text(encoding="utf8").splitlines() if line.strip()]
    return "\n".join(lines[:limit])


@pytest.mark.slow
def test_stage3_runs_every_step_and_exports(tmp_path):
    corpus = tmp_path / "v3"
    (corpus / "train").mkdir(parents=True)
    (corpus / "train" / "shard-00000.txt").write_text(tokenised_lines(BOOKS / "potter__the-tale-of-mr-tod.txt"))
    heldout = tokenised_lines(BOOKS / "potter__the-tailor-of-gloucester.txt", limit=40)
    for name in ("heldout-books/doyle__beyond-the-city.txt", "heldout-books/shelley__mathilda.txt",
                 "heldout-books/burroughs__the-land-that-time-forgot.txt", "ewt-dev/dev.txt", "heldout-tweets/t.txt",
                 "heldout-books/dickens__a-christmas-carol-in-prose-being-a-ghost-story-of-christmas.txt"):
        (corpus / name).parent.mkdir(exist_ok=True)
        (corpus / name).write_text(heldout)
    out = tmp_path / "out"
    result = run(corpus, out, "--run", tmp_path / "run" / "model", "--minutes", "0.05", "--warmup-steps", "2",
                 "--batch-size", "4", "--eval-batch-size", "4",
                 program=[sys.executable, ROOT / "scripts" / "train_stage3.py"])
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "results.json").read_text())
    for when in ("before", "after"):
        assert set(record[when]) == {"books", "christmas_carol", "ewt_dev", "tweets"}
        assert all(math.isfinite(score["ppl"]) and score["tokens"] > 0 for score in record[when].values())
    assert record["smoke"]["step"] == 5 and record["last_step"]["step"] > 2
    bilm = load_lstm_bilm(out / "options.json", out / "weights.hdf5")
    assert bilm.state_dict() and (out / "softmax.pt.0").stat().st_size > 0 and (out / "log.jsonl").is_file()
