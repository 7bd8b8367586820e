"""Runs of both biLM kinds: they learn, resume exactly, export what loads with the same layers, continue
from a run or an export, and the commands chain (prepare, vocab, pretrain, evaluate, export)."""
import json
import shutil
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import cli
from spacy_elmo.bilm.char_ids import CharBatch
from spacy_elmo.bilm.batching import batch_layers
from spacy_elmo.bilm.loading import load_any_bilm
from spacy_elmo.bilm.weights import load_lstm_bilm
from spacy_elmo.errors import InputError, OutputError
from spacy_elmo.training.checkpoint import load_checkpoint, run_config
from spacy_elmo.training.export import export
from spacy_elmo.training.models import initial_model, model_from_checkpoint
from spacy_elmo.training.trainer import evaluate, train
from spacy_elmo.training.vocab import Vocab

from .helpers import KINDS, OBJECTS, SUBJECTS, TINY_ARGS, VERBS, losses, make_corpus, tiny_config, unigram_perplexity

BATCH = CharBatch.from_sentences([["the", "cat", "sat"], ["a", "dog", "walked", "to", "the", "river", "bank", "."]])
EXPORTS = [("lstm", "export"), ("transformer", "archive"), ("transformer", "model.tar.gz")]


def trained_run(root: Path, bilm: str, **overrides) -> Path:
    config = tiny_config(root, bilm, heldout=[], **overrides)
    train(config)
    return Path(config.output)


def same_layers(a, b) -> bool:
    with torch.no_grad():
        return torch.equal(batch_layers(a.eval(), BATCH), batch_layers(b.eval(), BATCH))


@pytest.mark.parametrize("bilm,learning_rate", [("lstm", 0.02), ("transformer", 0.01)])
def test_loss_halves_and_heldout_perplexity_is_below_a_quarter_of_the_unigram_models(tmp_path, bilm, learning_rate):
    """60 Adam steps; n_negative_samples >= vocabulary, so the logged loss is the full softmax's."""
    root = make_corpus(tmp_path)
    record = train(tiny_config(root, bilm, n_negative_samples=1000, max_steps=60, optimizer="adam",
                               learning_rate=learning_rate))
    curve = losses(root / "run")
    assert len(curve) == 60
    assert np.mean(curve[-10:]) < 0.5 * np.mean(curve[:5])
    assert record["heldout"]["ppl"] < 0.25 * unigram_perplexity(root)
    assert (root / "run" / "loss.png").stat().st_size > 1000


@pytest.mark.parametrize("bilm", KINDS)
def test_resume_continues_the_same_run_exactly(tmp_path, bilm):
    root = make_corpus(tmp_path)
    trained_run(root, bilm, max_steps=8, output=str(tmp_path / "straight"))
    trained_run(root, bilm, max_steps=3, output=str(tmp_path / "resumed"))
    assert load_checkpoint(tmp_path / "resumed")["step"] == 3
    saved = run_config(load_checkpoint(tmp_path / "resumed"), tmp_path / "resumed")
    train(replace(saved, max_steps=8), resume=True)
    assert len(losses(tmp_path / "resumed")) == 8
    np.testing.assert_allclose(losses(tmp_path / "resumed"), losses(tmp_path / "straight"), rtol=0, atol=1e-6)
    straight, resumed = (load_checkpoint(tmp_path / name)["model"] for name in ("straight", "resumed"))
    assert all(torch.allclose(straight[k], resumed[k], rtol=0, atol=1e-6) for k in straight)


@pytest.mark.parametrize("bilm,name", EXPORTS)
def test_an_export_loads_with_the_trained_layers(runs, tmp_path, bilm, name):
    out = export(runs / bilm, tmp_path / name)
    assert same_layers(model_from_checkpoint(runs / bilm)[0].bilm, load_any_bilm(out))


def test_an_lstm_export_is_the_official_layout_with_the_vocabulary(runs, tmp_path):
    out = export(runs / "lstm", tmp_path / "export")
    assert json.loads((out / "options.json").read_text())["char_cnn"]["n_characters"] == 262
    assert json.loads((runs / "lstm" / "train_options.json").read_text())["char_cnn"]["n_characters"] == 261
    assert sorted(p.name for p in out.iterdir()) == ["options.json", "vocab.txt", "weights.hdf5"]
    assert Vocab.from_file(out / "vocab.txt") == Vocab.from_file(runs / "vocab.txt")


@pytest.mark.parametrize("name", ["archive", "model.tar.gz"])
def test_a_transformer_export_is_an_allennlp_archive_with_the_softmax(runs, tmp_path, name):
    run = runs / "transformer"
    out = export(run, tmp_path / name)
    model, vocab, _ = model_from_checkpoint(run)
    folder = out
    if name.endswith(".tar.gz"):
        with tarfile.open(out) as tar:
            tar.extractall(tmp_path / "unpacked", filter="data")
        folder = tmp_path / "unpacked"
    assert json.loads((run / "train_options.json").read_text())["kind"] == "transformer"
    config = json.loads((folder / "config.json").read_text())
    assert config["model"]["type"] == "language_model" and config["model"]["bidirectional"] is True
    assert config["model"]["num_samples"] == 8 and config["model"]["sparse_embeddings"] is False
    state = torch.load(folder / "weights.th", weights_only=True)
    n_vocab = len(vocab)
    assert state["_softmax_loss.softmax_w"].shape == (n_vocab + 1, 16)
    assert torch.equal(state["_softmax_loss.softmax_w"][:n_vocab], model.softmax.weight.detach())
    assert torch.equal(state["_softmax_loss.softmax_b"][:n_vocab], model.softmax.bias.detach())
    lines = (folder / "vocabulary" / "tokens.txt").read_text(encoding="utf8").splitlines()
    assert lines == ["@@UNKNOWN@@" if t == "<UNK>" else t for t in vocab.tokens]


def test_export_refuses_an_existing_output_and_other_head_counts(runs, tmp_path):
    run = runs / "transformer"
    export(run, tmp_path / "archive")
    with pytest.raises(OutputError, match="already exists"):
        export(run, tmp_path / "archive")
    export(run, tmp_path / "archive", overwrite=True)
    four = trained_run(runs, "transformer", max_steps=1, n_heads=4, output=str(tmp_path / "four"))
    with pytest.raises(Exception, match="8 attention heads"):
        export(four, tmp_path / "four-archive")
    assert not (tmp_path / "four-archive").exists()


@pytest.mark.parametrize("bilm", KINDS)
def test_init_from_a_run_or_an_export_and_not_across_kinds(runs, tmp_path, bilm):
    root, run = runs, runs / bilm
    exported = export(run, tmp_path / "export", with_softmax=True)
    vocab = Vocab.from_file(root / "vocab.txt")
    trained = model_from_checkpoint(run)[0]
    for source in (run, exported):
        model = initial_model(tiny_config(root, bilm, init_from=str(source)), vocab)
        assert same_layers(model.bilm, trained.bilm)
    assert torch.equal(initial_model(tiny_config(root, bilm, init_from=str(run)), vocab).softmax.weight,
                       trained.softmax.weight)
    other = next(kind for kind in KINDS if kind != bilm)
    with pytest.raises(InputError, match=f"holds a {bilm} biLM, but this run trains a {other} biLM"):
        initial_model(tiny_config(root, other, init_from=str(run)), vocab)


def test_continue_training_from_an_export_on_new_text(tmp_path):
    root = make_corpus(tmp_path)
    out = export(trained_run(root, "lstm", max_steps=5), tmp_path / "export", with_softmax=True)
    new = make_corpus(tmp_path / "new", seed=1)
    config = tiny_config(new, max_steps=1, heldout=[], dropout=0.0, init_from=str(out), vocab=str(root / "vocab.txt"))
    train(config)
    fresh = replace(config, init_from=None, output=str(tmp_path / "fresh"))
    train(fresh)
    assert losses(new / "run")[0] < losses(tmp_path / "fresh")[0], "continued training starts from the trained weights"
    other_vocab = tmp_path / "other.txt"
    Vocab(["<S>", "</S>", "<UNK>", "zebra"]).to_file(other_vocab)
    with pytest.raises(InputError, match="same vocabulary"):
        train(replace(config, vocab=str(other_vocab), output=str(tmp_path / "bad")))


@pytest.mark.parametrize("bilm", KINDS)
def test_a_continued_run_resumes_without_its_init_source(runs, tmp_path, caplog, bilm):
    out = export(runs / bilm, tmp_path / "export")
    config = tiny_config(runs, bilm, max_steps=2, heldout=[], init_from=str(out), output=str(tmp_path / "continued"))
    train(config)
    shutil.rmtree(out)
    caplog.clear()
    train(replace(config, max_steps=4), resume=True)
    assert load_checkpoint(tmp_path / "continued")["step"] == 4
    assert "softmax starts from random weights" not in caplog.text


def test_softmax_warmup_holds_the_pretrained_bilm_still(runs, tmp_path):
    """The warm-up sets the biLM's learning rate, whatever its kind: one kind shows it."""
    bilm = "lstm"
    out = export(runs / bilm, tmp_path / "export")
    exported = load_any_bilm(out).state_dict()
    held, moved = (model_from_checkpoint(trained_run(runs, bilm, max_steps=steps, init_from=str(out),
                                                     softmax_warmup_steps=3, output=str(tmp_path / f"warm{steps}")))
                   [0].bilm.state_dict() for steps in (3, 4))
    assert all(torch.equal(held[k], exported[k]) for k in exported)
    assert any(not torch.equal(moved[k], exported[k]) for k in exported)


def test_bad_training_input(tmp_path):
    root = make_corpus(tmp_path, n_sentences=4, n_shards=1)
    with pytest.raises(InputError, match="one batch needs"):
        train(tiny_config(root, batch_size=64, heldout=[]))
    bad_vocab = tmp_path / "novocab.txt"
    bad_vocab.write_text("</S>\n<UNK>\nthe\n", encoding="utf8")
    with pytest.raises(InputError, match="novocab.txt.*missing <S>"):
        train(tiny_config(root, vocab=str(bad_vocab)))


def ok(*args) -> str:
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_prepare_and_vocab_from_a_gutenberg_book(tmp_path):
    raw = tmp_path / "book.txt"
    text = " ".join(f"{s.capitalize()} {v} {o}." for s in SUBJECTS for v in VERBS for o in OBJECTS)
    raw.write_text("Header\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\n" + text + "\n*** END OF X ***\nLicense",
                   encoding="utf8")
    assert "150 sentences" in ok("prepare", raw, "-o", tmp_path / "shards", "--gutenberg", "--n-shards", "2")
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["shard-00000.txt", "shard-00001.txt"]
    ok("vocab", tmp_path / "shards", "-o", tmp_path / "vocab.txt", "--max-size", "30")
    vocab = Vocab.from_file(tmp_path / "vocab.txt")
    assert len(vocab) == 30 and vocab.tokens[3] == "." and "Header" not in vocab.tokens


@pytest.mark.parametrize("bilm", KINDS)
def test_cli_pretrain_resume_evaluate_export(tmp_path, bilm):
    root = make_corpus(tmp_path)
    run = tmp_path / "run"
    ok("pretrain", root / "train", "--vocab", root / "vocab.txt", "-o", run, *TINY_ARGS[bilm], "--max-steps", "3")
    ok("pretrain", "-o", run, "--resume", "--max-steps", "4")
    assert load_checkpoint(run)["step"] == 4
    heldout = tmp_path / "heldout.txt"
    heldout.write_text("".join((root / "heldout.txt").read_text().splitlines(keepends=True)[:12]))
    reported = json.loads(ok("evaluate", run, heldout, "--batch-size", "2"))
    model, vocab, config = model_from_checkpoint(run)
    assert reported == evaluate(model, vocab, [str(heldout)], config, 2)
    assert f"exported to {tmp_path / 'export'}" in ok("export", run, tmp_path / "export")
    assert same_layers(model.bilm, load_any_bilm(tmp_path / "export"))


def test_the_elmo_component_reads_an_exported_archive(runs, tmp_path):
    import spacy

    run = runs / "transformer"
    out = export(run, tmp_path / "model.tar.gz")
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"model": {"archive": str(out)}})
    nlp.initialize()
    doc = nlp("the cat sat on the river bank .")
    words = [t.text for t in doc]
    with torch.no_grad():
        expected = batch_layers(model_from_checkpoint(run)[0].bilm.eval(), CharBatch.from_sentences([words]))
    assert doc._.elmo.shape == (3, 8, 32)
    np.testing.assert_allclose(doc._.elmo, expected[:, 0, 1:-1].numpy(), rtol=0, atol=1e-5)


def test_spacy_cli_entry_point_adds_the_elmo_commands():
    import typer
    from spacy.cli._util import app as spacy_app

    import spacy_elmo.cli.spacy_cli  # noqa: F401  (what spaCy's setup_cli loads through the entry point)

    group = typer.main.get_command(spacy_app)
    assert {"pretrain", "vocab", "evaluate", "export"} <= set(group.commands["elmo"].commands)


def test_the_loop_keeps_no_aliases_of_other_modules_names():
    from spacy_elmo.training import trainer

    assert not any(hasattr(trainer, name) for name in ("LanguageModel", "export", "model_from_checkpoint"))


def test_shipped_default_model_loads_and_is_documented():
    from spacy_elmo.hub import resolve_model_files
    from spacy_elmo.hub.catalogue import BUNDLED_DIR as DEFAULT_MODEL_DIR

    options_file, weight_file = resolve_model_files()
    total = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.iterdir())
    assert total < 30e6
    assert not (DEFAULT_MODEL_DIR / "softmax.pt").exists()
    bilm = load_lstm_bilm(options_file, weight_file)
    card = (DEFAULT_MODEL_DIR / "MODEL_CARD.md").read_text(encoding="utf8")
    assert f"lstm {bilm.options.lstm_dim}, projection {bilm.options.projection_dim}" in card
    assert len(Vocab.from_file(DEFAULT_MODEL_DIR / "vocab.txt")) == 40000
    with torch.no_grad():
        layers = batch_layers(bilm, CharBatch.from_sentences([["The", "river", "bank", "was", "muddy", "."]]))
    assert layers.shape == (3, 1, 8, 2 * bilm.options.projection_dim) and torch.isfinite(layers).all()
