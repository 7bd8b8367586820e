import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from spacy_elmo.bilm.char_ids import CharBatch
from spacy_elmo.errors import InputError
from spacy_elmo.training.trainer import TrainConfig, export, load_checkpoint, model_from_checkpoint, train
from spacy_elmo.training.vocab import Vocab
from spacy_elmo.bilm.weights import load_bilm

ROOT = Path(__file__).resolve().parents[1]
SUBJECTS = ["the cat", "a dog", "my friend", "the old man", "she", "he"]
VERBS = ["sat on", "looked at", "walked to", "saw", "liked"]
OBJECTS = ["the mat", "a tree", "the house", "her car", "the river bank"]


def make_corpus(root: Path, n_sentences: int = 400, n_shards: int = 2, seed: int = 0) -> Path:
    """A small structured language (subject verb object .) that a tiny biLM can learn in seconds."""
    rng = np.random.default_rng(seed)
    lines = [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} ." for _ in range(n_sentences)]
    (root / "train").mkdir(parents=True)
    for k in range(n_shards):
        (root / "train" / f"shard-{k}.txt").write_text("\n".join(lines[k::n_shards]) + "\n", encoding="utf8")
    (root / "heldout.txt").write_text("\n".join(lines[:60]) + "\n", encoding="utf8")
    tokens = sorted({t for line in lines for t in line.split()})
    Vocab(["<S>", "</S>", "<UNK>"] + tokens).to_file(root / "vocab.txt")
    return root


def tiny_config(root: Path, **overrides) -> TrainConfig:
    config = TrainConfig(train=[str(root / "train")], vocab=str(root / "vocab.txt"), output=str(root / "run"),
                         lstm_dim=32, projection_dim=16, n_layers=2, filters=[[1, 8], [2, 8], [3, 16]],
                         char_embedding_dim=4, n_highway=1, batch_size=8, unroll_steps=10, n_negative_samples=8,
                         max_steps=60, log_every=1, checkpoint_every=1000, checkpoint_minutes=1000.0,
                         heldout=[str(root / "heldout.txt")], eval_batch_size=4, progress=False, threads=1)
    return replace(config, **overrides)


def losses(run: Path):
    return [r["loss"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "loss" in r]


def test_loss_falls_and_heldout_perplexity_beats_chance(tmp_path):
    root = make_corpus(tmp_path)
    # n_negative_samples >= vocabulary: the logged loss is the full softmax's
    record = train(tiny_config(root, n_negative_samples=1000, max_steps=150))
    curve = losses(root / "run")
    assert len(curve) == 150
    assert np.mean(curve[-10:]) < 0.5 * np.mean(curve[:5])
    n_vocab = len(Vocab.from_file(root / "vocab.txt"))
    assert record["heldout"]["ppl"] < n_vocab / 6
    assert (root / "run" / "loss.png").stat().st_size > 1000


def test_resume_continues_the_same_run_exactly(tmp_path):
    root = make_corpus(tmp_path)
    train(tiny_config(root, max_steps=14, heldout=[], output=str(tmp_path / "straight")))
    interrupted = tiny_config(root, max_steps=6, heldout=[], output=str(tmp_path / "resumed"))
    train(interrupted)
    assert load_checkpoint(tmp_path / "resumed")["step"] == 6
    saved = TrainConfig.from_dict(load_checkpoint(tmp_path / "resumed")["config"])
    train(replace(saved, max_steps=14), resume=True)
    straight, resumed = losses(tmp_path / "straight"), losses(tmp_path / "resumed")
    assert len(resumed) == 14
    np.testing.assert_allclose(resumed, straight, rtol=0, atol=1e-6)


def test_export_loads_with_identical_layers(tmp_path):
    root = make_corpus(tmp_path)
    train(tiny_config(root, max_steps=5, heldout=[]))
    out = export(root / "run", tmp_path / "export")
    options = json.loads((out / "options.json").read_text())
    assert options["char_cnn"]["n_characters"] == 262
    assert json.loads((root / "run" / "train_options.json").read_text())["char_cnn"]["n_characters"] == 261
    assert not (out / "softmax.pt").exists()
    trained = model_from_checkpoint(root / "run")[0].bilm.eval()
    loaded = load_bilm(out / "options.json", out / "weights.hdf5")
    batch = CharBatch.from_sentences([["the", "cat", "sat"], ["a", "dog", "walked", "to", "the", "river", "bank", "."]])
    with torch.no_grad():
        assert torch.equal(trained.embed(batch), loaded.embed(batch))
    assert Vocab.from_file(out / "vocab.txt") == Vocab.from_file(root / "vocab.txt")


def test_continue_training_from_an_export_on_new_text(tmp_path):
    root = make_corpus(tmp_path)
    train(tiny_config(root, max_steps=5, heldout=[]))
    out = export(root / "run", tmp_path / "export", with_softmax=True)
    new = make_corpus(tmp_path / "new", seed=1)
    config = tiny_config(new, max_steps=1, heldout=[], dropout=0.0, init_from=str(out), vocab=str(root / "vocab.txt"))
    first = losses(Path(train(config) and config.output))[0]
    start = model_from_checkpoint(root / "run")[0]
    fresh = tiny_config(new, max_steps=1, heldout=[], dropout=0.0, vocab=str(root / "vocab.txt"),
                        output=str(tmp_path / "fresh"))
    train(fresh)
    assert first < losses(tmp_path / "fresh")[0], "continued training must start from the trained weights"
    continued = model_from_checkpoint(new / "run")[0]
    assert continued.bilm.options == start.bilm.options
    other_vocab = tmp_path / "other.txt"
    Vocab(["<S>", "</S>", "<UNK>", "zebra"]).to_file(other_vocab)
    with pytest.raises(InputError, match="same vocabulary"):
        train(replace(config, vocab=str(other_vocab), output=str(tmp_path / "bad")))


def test_a_continued_run_resumes_without_its_init_source(tmp_path, caplog):
    root = make_corpus(tmp_path)
    train(tiny_config(root, max_steps=3, heldout=[]))
    out = export(root / "run", tmp_path / "export")
    config = tiny_config(root, max_steps=2, heldout=[], init_from=str(out), output=str(tmp_path / "continued"))
    train(config)
    shutil.rmtree(out)
    caplog.clear()
    train(replace(config, max_steps=4), resume=True)
    assert load_checkpoint(tmp_path / "continued")["step"] == 4
    assert "softmax starts from random weights" not in caplog.text


def test_softmax_warmup_holds_the_pretrained_bilm_still(tmp_path):
    root = make_corpus(tmp_path)
    train(tiny_config(root, max_steps=5, heldout=[]))
    out = export(root / "run", tmp_path / "export")
    exported = load_bilm(out / "options.json", out / "weights.hdf5").state_dict()
    runs = {}
    for steps in (3, 4):
        config = tiny_config(root, max_steps=steps, heldout=[], init_from=str(out), softmax_warmup_steps=3,
                             output=str(tmp_path / f"warm{steps}"))
        train(config)
        runs[steps] = model_from_checkpoint(tmp_path / f"warm{steps}")[0]
    held = runs[3].bilm.state_dict()
    assert all(torch.equal(held[k], exported[k]) for k in exported)
    moved = runs[4].bilm.state_dict()
    assert any(not torch.equal(moved[k], exported[k]) for k in exported)


def test_bad_training_input(tmp_path):
    root = make_corpus(tmp_path, n_sentences=4, n_shards=1)
    with pytest.raises(InputError, match="one batch needs"):
        train(tiny_config(root, batch_size=64, heldout=[]))
    bad_vocab = tmp_path / "novocab.txt"
    bad_vocab.write_text("</S>\n<UNK>\nthe\n", encoding="utf8")
    with pytest.raises(InputError, match="novocab.txt.*missing <S>"):
        train(tiny_config(root, vocab=str(bad_vocab)))
    with pytest.raises(InputError, match="held-out text .* smaller than one batch"):
        train(tiny_config(make_corpus(tmp_path / "ok"), max_steps=1, eval_batch_size=500))


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_stops(tmp_path):
    root = make_corpus(tmp_path)
    config = tiny_config(root, max_steps=100_000, heldout=[])
    script = f"from spacy_elmo.training.trainer import TrainConfig, train; train(TrainConfig(**{json.dumps(config.__dict__)}))"
    script = script.replace("null", "None").replace("true", "True").replace("false", "False")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    log = root / "run" / "log.jsonl"
    deadline = time.time() + 60
    while not (log.exists() and len(log.read_text().splitlines()) >= 3) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    ckpt = load_checkpoint(root / "run")
    assert ckpt["step"] == json.loads(log.read_text().splitlines()[-1])["step"] >= 3


def test_cli_prepare_vocab_pretrain_evaluate_export(tmp_path):
    from typer.testing import CliRunner

    from spacy_elmo.cli.app import app

    raw = tmp_path / "book.txt"
    text = " ".join(f"{s.capitalize()} {v} {o}." for s in SUBJECTS for v in VERBS for o in OBJECTS)
    raw.write_text("Header\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\n" + text + "\n*** END OF X ***\nLicense",
                   encoding="utf8")
    runner = CliRunner()

    def ok(*args):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return result.output

    assert "150 sentences" in ok("prepare", raw, "-o", tmp_path / "shards", "--gutenberg", "--n-shards", "2")
    ok("vocab", tmp_path / "shards", "-o", tmp_path / "vocab.txt", "--max-size", "30")
    assert Vocab.from_file(tmp_path / "vocab.txt").tokens[3] == "."
    ok("pretrain", tmp_path / "shards", "--vocab", tmp_path / "vocab.txt", "-o", tmp_path / "run", "--lstm-dim", "16",
       "--projection-dim", "8", "--filters", "1:4,2:4", "--char-dim", "4", "--batch-size", "4", "--unroll-steps", "5",
       "--n-negative-samples", "8", "--max-steps", "3", "--log-every", "1")
    ok("pretrain", "-o", tmp_path / "run", "--resume", "--max-steps", "4")
    assert load_checkpoint(tmp_path / "run")["step"] == 4
    assert json.loads(ok("evaluate", tmp_path / "run", tmp_path / "shards", "--batch-size", "2"))["ppl"] > 1
    ok("export", tmp_path / "run", tmp_path / "export")
    assert load_bilm(tmp_path / "export" / "options.json", tmp_path / "export" / "weights.hdf5").options.lstm_dim == 16


def test_spacy_cli_entry_point_adds_the_elmo_commands():
    import typer
    from spacy.cli._util import app as spacy_app

    import spacy_elmo.cli.spacy_cli  # noqa: F401  (what spaCy's setup_cli loads through the entry point)

    group = typer.main.get_command(spacy_app)
    assert {"pretrain", "vocab", "evaluate", "export"} <= set(group.commands["elmo"].commands)


def test_shipped_default_model_loads_and_is_documented():
    from spacy_elmo.hub.default_model import DEFAULT_MODEL_DIR, default_model_files

    options_file, weight_file = default_model_files()
    total = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.iterdir())
    assert total < 30e6
    assert not (DEFAULT_MODEL_DIR / "softmax.pt").exists()
    bilm = load_bilm(options_file, weight_file)
    card = (DEFAULT_MODEL_DIR / "MODEL_CARD.md").read_text(encoding="utf8")
    assert f"lstm {bilm.options.lstm_dim}, projection {bilm.options.projection_dim}" in card
    assert len(Vocab.from_file(DEFAULT_MODEL_DIR / "vocab.txt")) == 40000
    with torch.no_grad():
        layers = bilm.embed(CharBatch.from_sentences([["The", "river", "bank", "was", "muddy", "."]]))
    assert layers.shape == (3, 1, 8, 2 * bilm.options.projection_dim) and torch.isfinite(layers).all()
