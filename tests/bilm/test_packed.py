"""Packed weights (spacy_elmo.bilm.precision.PACKED): fp32 inference through oneDNN's packed weights
equals torch's own products, each weight is packed once per state (not per time step), the reduced
precisions stay at cosine >= 0.999 to fp32 on every layer, and autograd never reaches a packed kernel."""
import json

import numpy as np
import pytest
import torch

from spacy_elmo import CharBatch, Embedder
from spacy_elmo.bilm import precision
from spacy_elmo.bilm.batching import batch_layers
from spacy_elmo.bilm.lstm_bilm import LstmBiLM
from spacy_elmo.bilm.options import PUBLISHED_FILTERS, LstmOptions
from spacy_elmo.bilm.weights import load_lstm_bilm

REDUCED = ["fp16", "int8"]


@pytest.fixture(scope="module")
def fixture_bilm(fixture_dir):
    return load_lstm_bilm(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5")


@pytest.fixture(scope="module")
def sentences(fixture_dir):
    return [s.split() for stream in json.loads((fixture_dir / "sentences.json").read_text()) for s in stream]


@pytest.fixture(scope="module")
def medium_bilm():
    """Random weights at the published medium size (2 x 2048 cells, 256 projection)."""
    torch.manual_seed(0)
    options = LstmOptions(filters=tuple(PUBLISHED_FILTERS), char_embedding_dim=16, n_layers=2, lstm_dim=2048,
                          projection_dim=256, n_highway=1)
    return LstmBiLM(options).eval()


def layers(bilm, sentences, mode="fp32"):
    batch = CharBatch.from_sentences(sentences, bilm.options.max_characters_per_token)
    with torch.inference_mode():
        return batch_layers(bilm, batch, precision=mode), torch.from_numpy(batch.lengths)


def counting_packs(monkeypatch, kind):
    """Counts calls of the `kind` packing function from now on."""
    pack, multiply = precision.PACKED[kind]
    calls = []

    def counted(weight):
        calls.append(tuple(weight.shape))
        return pack(weight)

    monkeypatch.setitem(precision.PACKED, kind, (counted, multiply))
    return calls


def test_packed_fp32_equals_torch_products(fixture_bilm, sentences, monkeypatch):
    calls = counting_packs(monkeypatch, "fp32")
    packed, _ = layers(fixture_bilm, sentences)
    assert calls, "fp32 inference did not use the packed kernels"
    monkeypatch.setattr(precision, "_has_onednn", lambda: False)
    plain, _ = layers(fixture_bilm, sentences)
    torch.testing.assert_close(packed, plain, rtol=0, atol=1e-5)


@pytest.mark.parametrize("mode", ["fp32", *REDUCED])
def test_weights_are_packed_once_per_state(mode, fixture_dir, sentences, monkeypatch):
    """One pack per direction of each LSTM weight and per char-CNN linear layer at the first batch;
    none at later batches; only the changed weight again after an in-place change."""
    bilm = load_lstm_bilm(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5")
    calls = counting_packs(monkeypatch, mode)
    embedder = Embedder(bilm, batch_size=2, precision=mode, cache_size=0)
    list(embedder.embed_sentences(sentences))
    n_layers, n_highway = bilm.options.n_layers, bilm.options.n_highway
    projection = 1 if bilm.char_cnn.projection is not None else 0
    assert len(calls) == n_layers * 2 * 3 + 2 * n_highway + projection
    list(embedder.embed_sentences(sentences[::-1]))
    assert len(calls) == n_layers * 2 * 3 + 2 * n_highway + projection
    with torch.no_grad():
        bilm.lstm.layers[0].w_hidden.mul_(0.5)
    list(embedder.embed_sentences(sentences[:1]))
    hidden = tuple(bilm.lstm.layers[0].w_hidden.shape[1:])[::-1]
    assert calls[-2:] == [hidden, hidden] and len(calls) == n_layers * 2 * 3 + 2 * n_highway + projection + 2


def per_layer_cosines(reference, other, lengths):
    """Mean token cosine of each layer (real positions only)."""
    mask = torch.arange(reference.shape[2]).unsqueeze(0) < lengths.unsqueeze(1)
    cosines = torch.nn.functional.cosine_similarity(reference, other, dim=-1)
    return [float(layer[mask].mean()) for layer in cosines]


@pytest.mark.parametrize("mode", REDUCED)
@pytest.mark.parametrize("model", ["fixture", "random medium"])
def test_reduced_precision_per_layer_cosine(mode, model, fixture_bilm, medium_bilm, sentences):
    bilm = fixture_bilm if model == "fixture" else medium_bilm
    reference, lengths = layers(bilm, sentences)
    lowered, _ = layers(bilm, sentences, mode)
    assert not torch.equal(reference, lowered), f"{mode} computed exactly fp32"
    cosines = per_layer_cosines(reference, lowered, lengths)
    assert min(cosines) >= 0.999, (mode, model, cosines)


def failing_kernels(monkeypatch):
    def refuse(*args):
        raise AssertionError("a packed kernel ran under autograd")

    for kind in precision.PACKED:
        monkeypatch.setitem(precision.PACKED, kind, (refuse, refuse))


@pytest.mark.parametrize("mode", ["fp32", *REDUCED])
def test_autograd_never_uses_packed_kernels(mode, fixture_dir, sentences, monkeypatch):
    """Fine-tuning (`frozen=False`) and `pretrain` differentiate torch's own products: the gradients
    equal those of a run where oneDNN is not there at all."""
    def gradients():
        bilm = load_lstm_bilm(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5")
        batch = CharBatch.from_sentences(sentences[:4], bilm.options.max_characters_per_token)
        batch_layers(bilm, batch, precision=mode).square().sum().backward()
        return {name: p.grad for name, p in bilm.named_parameters() if p.grad is not None}

    with monkeypatch.context() as patched:
        failing_kernels(patched)
        found = gradients()
    monkeypatch.setattr(precision, "_has_onednn", lambda: False)
    expected = gradients()
    assert found.keys() == expected.keys() and any("w_hidden" in name for name in found)
    for name in expected:
        assert torch.equal(found[name], expected[name]), name


def test_packed_kernels_serve_inference_after_training_steps(fixture_dir, sentences):
    """Packs made before an optimizer step are not reused after it (the weights' version moved)."""
    bilm = load_lstm_bilm(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5")
    layers(bilm, sentences)
    optimizer = torch.optim.SGD(bilm.parameters(), lr=0.5)
    batch = CharBatch.from_sentences(sentences[:4], bilm.options.max_characters_per_token)
    batch_layers(bilm, batch).square().sum().backward()
    optimizer.step()
    after, _ = layers(bilm, sentences)
    expected = batch_layers(bilm, CharBatch.from_sentences(sentences, bilm.options.max_characters_per_token))
    np.testing.assert_allclose(after.numpy(), expected.detach().numpy(), rtol=0, atol=1e-5)
