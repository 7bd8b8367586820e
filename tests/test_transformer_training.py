"""pretrain --bilm transformer: batches of whole sentences, training, resume, evaluate, export, DDP."""
import json
import math
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from test_distributed import torchrun
from test_trainer import losses, make_corpus, tiny_config

from spacy_elmo.bilm.char_ids import BOS, EOS, CharBatch
from spacy_elmo.bilm.interface import load_any_bilm
from spacy_elmo.errors import InputError
from spacy_elmo.training.corpus import SentenceStream
from spacy_elmo.training.trainer import TrainConfig, export, load_checkpoint, model_from_checkpoint, train
from spacy_elmo.training.transformer_lm import NO_TARGET, SentenceWindows, encode_windows
from spacy_elmo.training.vocab import Vocab

SENTENCES = [["the", "cat", "sat", "on", "the", "mat", "."], ["she", "saw", "a", "tree"], ["he", "sat", "."]]


def transformer_config(root: Path, **overrides) -> TrainConfig:
    return tiny_config(root, **{"bilm": "transformer", "input_dim": 16, "hidden_dim": 32, "n_heads": 8,
                                "unroll_steps": 16, **overrides})


def windows_of(tmp_path: Path, sentences, batch_size: int, window: int) -> SentenceWindows:
    (tmp_path / "text.txt").write_text("\n".join(" ".join(s) for s in sentences) + "\n", encoding="utf8")
    vocab = Vocab(["<S>", "</S>", "<UNK>"] + sorted({t for s in sentences for t in s}))
    stream = SentenceStream([tmp_path / "text.txt"], shuffle=False, loop=False)
    return SentenceWindows(stream, vocab, batch_size, window)


def test_windows_hold_whole_sentences_from_position_0_with_next_and_previous_targets(tmp_path):
    windows = windows_of(tmp_path, SENTENCES, batch_size=2, window=12)
    vocab = windows.vocab
    batch = next(windows)
    # row 0: sentence 1 (9 tokens with boundaries); sentence 2 (6) does not fit in the 3 left: next row
    assert batch.rows[0] == [BOS, *SENTENCES[0], EOS]
    assert batch.rows[1] == [BOS, *SENTENCES[1], EOS, BOS, *SENTENCES[2], EOS]
    assert batch.segments[1].tolist() == [1] * 6 + [2] * 5 + [0]
    assert batch.positions[1].tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 0]
    second = [BOS, *SENTENCES[1], EOS]
    assert batch.targets[0, 1, :6].tolist() == [*vocab.ids(second[1:]), NO_TARGET]
    assert batch.targets[1, 1, :6].tolist() == [NO_TARGET, *vocab.ids(second[:-1])]
    assert (batch.targets[:, 0, 9:] == NO_TARGET).all() and batch.n_tokens == 9 + 11
    with pytest.raises(StopIteration):
        next(windows)


def test_a_sentence_longer_than_a_row_is_cut_with_the_whole_sentence_targets(tmp_path):
    long = [f"w{i}" for i in range(10)]
    windows = windows_of(tmp_path, [long], batch_size=2, window=5)
    batch = next(windows)
    tokens = [BOS, *long, EOS]
    ids = windows.vocab.ids(tokens)
    assert batch.rows == [tokens[:5], tokens[5:10]]
    assert batch.positions.tolist() == [[0, 1, 2, 3, 4]] * 2
    assert batch.targets[0, 1].tolist() == ids[6:11].tolist()
    assert batch.targets[1, 1].tolist() == ids[4:9].tolist()
    last = next(windows)
    assert last.rows == [tokens[10:], []] and last.targets[0, 0, 1] == NO_TARGET and last.targets[1, 0, 1] == ids[10]


def test_packed_sentences_are_computed_as_if_alone(tmp_path):
    """The masks keep a row's sentences apart: every top-layer vector equals the embedder's for that
    sentence alone, so training sees exactly what embedding will."""
    model = model_from_checkpoint(_trained(make_corpus(tmp_path / "corpus"), max_steps=2))[0]
    windows = next(windows_of(tmp_path, SENTENCES, batch_size=2, window=12))
    char_ids, index, positions, segments, _ = encode_windows(windows, 50)
    with torch.no_grad():
        forward, backward = model.bilm.directions(model.bilm.char_cnn(char_ids)[index], positions, segments)
        alone = [model.bilm.embed(CharBatch.from_sentences([s]))[-1, 0] for s in SENTENCES]
    packed = torch.cat([forward[-1], backward[-1]], dim=-1)
    for (row, start), sentence, expected in zip([(0, 0), (1, 0), (1, 6)], SENTENCES, alone):
        n = len(sentence) + 2
        torch.testing.assert_close(packed[row, start : start + n], expected[:n], rtol=0, atol=1e-5)


def _trained(root: Path, **overrides) -> Path:
    config = transformer_config(root, heldout=[], **overrides)
    train(config)
    return Path(config.output)


def test_loss_falls_and_heldout_perplexity_beats_chance(tmp_path):
    root = make_corpus(tmp_path)
    # n_negative_samples >= vocabulary: the logged loss is the full softmax's
    record = train(transformer_config(root, n_negative_samples=1000, max_steps=80))
    curve = losses(root / "run")
    assert len(curve) == 80
    assert np.mean(curve[-10:]) < 0.5 * np.mean(curve[:5])
    n_vocab = len(Vocab.from_file(root / "vocab.txt"))
    assert math.isfinite(record["heldout"]["ppl"]) and record["heldout"]["ppl"] < n_vocab / 4
    options = json.loads((root / "run" / "train_options.json").read_text())
    assert options["kind"] == "transformer" and options["input_dim"] == 16


def test_resume_continues_the_same_run_exactly(tmp_path):
    root = make_corpus(tmp_path)
    train(transformer_config(root, max_steps=14, heldout=[], output=str(tmp_path / "straight")))
    train(transformer_config(root, max_steps=6, heldout=[], output=str(tmp_path / "resumed")))
    saved = TrainConfig.from_dict(load_checkpoint(tmp_path / "resumed")["config"])
    assert saved.bilm == "transformer"
    train(replace(saved, max_steps=14), resume=True)
    np.testing.assert_allclose(losses(tmp_path / "resumed"), losses(tmp_path / "straight"), rtol=0, atol=1e-6)
    straight = load_checkpoint(tmp_path / "straight")["model"]
    resumed = load_checkpoint(tmp_path / "resumed")["model"]
    assert all(torch.allclose(straight[k], resumed[k], rtol=0, atol=1e-6) for k in straight)
    with pytest.raises(InputError, match="bilm: run 'transformer', given 'lstm'"):
        train(replace(saved, bilm="lstm", max_steps=16), resume=True)
    with pytest.raises(InputError, match="input_dim: run 16, given 32"):
        train(replace(saved, input_dim=32, max_steps=16), resume=True)


@pytest.mark.parametrize("name", ["archive", "model.tar.gz"])
def test_export_is_an_allennlp_archive_with_the_trained_layers_and_softmax(tmp_path, name):
    root = make_corpus(tmp_path)
    run = _trained(root, max_steps=5)
    out = export(run, tmp_path / name)
    model, vocab, _ = model_from_checkpoint(run)
    loaded = load_any_bilm(out)
    batch = CharBatch.from_sentences([["the", "cat", "sat"], ["a", "dog", "walked", "to", "the", "river", "bank", "."]])
    with torch.no_grad():
        assert torch.equal(model.bilm.eval().embed(batch), loaded.embed(batch))
    folder = out
    if name.endswith(".tar.gz"):
        with tarfile.open(out) as tar:
            tar.extractall(tmp_path / "unpacked", filter="data")
        folder = tmp_path / "unpacked"
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


def test_export_refuses_an_existing_output_and_other_head_counts(tmp_path):
    root = make_corpus(tmp_path)
    run = _trained(root, max_steps=1)
    export(run, tmp_path / "archive")
    from spacy_elmo.errors import OutputError

    with pytest.raises(OutputError, match="already exists"):
        export(run, tmp_path / "archive")
    export(run, tmp_path / "archive", overwrite=True)
    four = _trained(root, max_steps=1, n_heads=4, output=str(tmp_path / "four"))
    with pytest.raises(Exception, match="8 attention heads"):
        export(four, tmp_path / "four-archive")
    assert not (tmp_path / "four-archive").exists()


def test_cli_pretrain_resume_evaluate_export(tmp_path):
    from typer.testing import CliRunner

    from spacy_elmo.cli.app import app

    root = make_corpus(tmp_path)
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args])

    bad = invoke("pretrain", root / "train", "--vocab", root / "vocab.txt", "-o", tmp_path / "bad", "--bilm",
                 "transformer", "--input-dim", "12")
    assert bad.exit_code == 1 and "input_dim (12) must be even and a multiple of n_heads (8)" in bad.output
    assert not (tmp_path / "bad").exists()
    run = tmp_path / "cli-run"
    done = invoke("pretrain", root / "train", "--vocab", root / "vocab.txt", "-o", run, "--bilm", "transformer",
                  "--input-dim", "16", "--hidden-dim", "32", "--n-layers", "1", "--filters", "1:4,2:4", "--char-dim",
                  "4", "--batch-size", "4", "--n-negative-samples", "8", "--max-steps", "3", "--threads", "1")
    assert done.exit_code == 0, done.output
    assert load_checkpoint(run)["config"]["unroll_steps"] == 64
    refused = invoke("pretrain", "-o", run, "--resume", "--max-steps", "4", "--bilm", "lstm")
    assert refused.exit_code == 1 and "bilm: run 'transformer', given 'lstm'" in refused.output
    assert invoke("pretrain", "-o", run, "--resume", "--max-steps", "4").exit_code == 0
    assert load_checkpoint(run)["step"] == 4
    evaluated = invoke("evaluate", run, root / "heldout.txt", "--batch-size", "2")
    assert evaluated.exit_code == 0, evaluated.output
    result = json.loads(evaluated.output)
    heldout = (root / "heldout.txt").read_text().splitlines()
    assert math.isfinite(result["ppl"]) and result["ppl"] > 1 and result["tokens"] == sum(len(s.split()) + 1 for s in heldout)
    exported = invoke("export", run, tmp_path / "model.tar.gz")
    assert exported.exit_code == 0, exported.output
    assert load_any_bilm(tmp_path / "model.tar.gz").n_output_layers == 2


@pytest.mark.slow
def test_two_process_ddp_training_and_resume(tmp_path):
    root = make_corpus(tmp_path, n_shards=4)
    run = tmp_path / "run"
    args = [str(root / "train"), "--vocab", str(root / "vocab.txt"), "-o", str(run), "--bilm", "transformer",
            "--input-dim", "16", "--hidden-dim", "32", "--n-layers", "1", "--filters", "1:8,2:8", "--char-dim", "4",
            "--batch-size", "4", "--unroll-steps", "12", "--n-negative-samples", "8", "--max-steps", "4",
            "--log-every", "2", "--threads", "1"]
    done = torchrun(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = load_checkpoint(run)
    assert ckpt["step"] == 4 and len(ckpt["ranks"]) == 2
    # each rank reads its own shards; tokens are the real ones of both ranks, padding not counted
    streams = [r["windows"]["stream"] for r in ckpt["ranks"]]
    assert {streams[0]["current"], *streams[0]["queue"]} == {0, 1} == {streams[1]["current"], *streams[1]["queue"]}
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert ckpt["tokens"] == log[-1]["tokens"] and 4 * 2 * 4 * 4 < ckpt["tokens"] < 4 * 2 * 4 * 12
    resumed = torchrun(["-o", str(run), "--resume", "--max-steps", "6"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()] == [2, 4, 6]


def test_the_elmo_component_reads_an_exported_archive(tmp_path):
    import spacy

    run = _trained(make_corpus(tmp_path), max_steps=2)
    out = export(run, tmp_path / "model.tar.gz")
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"model": {"archive": str(out)}})
    nlp.initialize()
    doc = nlp("the cat sat on the river bank .")
    words = [t.text for t in doc]
    with torch.no_grad():
        expected = model_from_checkpoint(run)[0].bilm.eval().embed(CharBatch.from_sentences([words]))
    assert doc._.elmo.shape == (3, 8, 32)
    np.testing.assert_allclose(doc._.elmo, expected[:, 0, 1:-1].numpy(), rtol=0, atol=1e-5)


def test_init_from_a_transformer_run_or_archive_and_not_across_architectures(tmp_path):
    from spacy_elmo.training.trainer import _initial_model

    root = make_corpus(tmp_path)
    run = _trained(root, max_steps=2)
    archive = export(run, tmp_path / "archive")
    vocab = Vocab.from_file(root / "vocab.txt")
    trained = model_from_checkpoint(run)[0]
    for source in (run, archive):
        model = _initial_model(transformer_config(root, init_from=str(source)), vocab)
        state = model.bilm.state_dict()
        assert all(torch.equal(state[k], v) for k, v in trained.bilm.state_dict().items())
    assert torch.equal(_initial_model(transformer_config(root, init_from=str(run)), vocab).softmax.weight,
                       trained.softmax.weight)
    with pytest.raises(InputError, match="holds a transformer biLM, but this run trains a lstm biLM"):
        _initial_model(tiny_config(root, init_from=str(run)), vocab)
