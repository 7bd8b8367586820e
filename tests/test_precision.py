"""Run-time precision of the biLM: bf16 and int8 stay close to fp32 (per-token cosine on EWT dev, on the
reference fixture, the bundled model and the transformer fixture), change no weight, follow weights that
change, fall back to fp32 under autograd; bad values are one clear error."""
import numpy as np
import pytest
import torch

from spacy_elmo.bilm import precision
from spacy_elmo.bilm.archive import load_archive
from spacy_elmo.bilm.embedder import Embedder
from spacy_elmo.bilm.weights import load_bilm
from spacy_elmo.errors import InputError
from spacy_elmo.hub.default_model import default_model_files

from conftest import SHARED

N_SENTENCES = 150


def read_conllu(path, limit):
    sentences, tokens = [], []
    for line in path.read_text(encoding="utf8").splitlines():
        if not line.strip():
            if tokens:
                sentences.append(tokens)
                tokens = []
        elif not line.startswith("#") and line.split("\t")[0].isdigit():
            tokens.append(line.split("\t")[1])
    return sentences[:limit]


@pytest.fixture(scope="module")
def ewt(data_dir):
    return read_conllu(data_dir / "ud-english-ewt" / "en_ewt-ud-dev.conllu", N_SENTENCES)


def token_cosines(reference, other, pick):
    """Per-token cosine between two runs, for the layer view `pick` of each sentence's (L, n, D) array."""
    found = []
    for ref, out in zip(reference, other):
        a, b = pick(ref), pick(out)
        found.append((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)))
    return np.concatenate(found)


def assert_close_to_fp32(bilm, sentences, mode):
    reference = list(Embedder(bilm).embed_sentences(sentences))
    lowered = list(Embedder(bilm, precision=mode).embed_sentences(sentences))
    assert any(not np.array_equal(r, o) for r, o in zip(reference, lowered)), f"{mode} computed exactly fp32"
    for view, pick in (("top", lambda a: a[-1]), ("average", lambda a: a.mean(0))):
        cosines = token_cosines(reference, lowered, pick)
        assert cosines.mean() >= 0.999 and cosines.min() >= 0.99, (mode, view, cosines.mean(), cosines.min())


@pytest.fixture(scope="module")
def fixture_bilm(fixture_dir):
    return load_bilm(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5")


@pytest.mark.parametrize("mode", ["bf16", "int8"])
def test_fixture_model_close_to_fp32(fixture_bilm, ewt, mode):
    assert_close_to_fp32(fixture_bilm, ewt, mode)


@pytest.mark.parametrize("mode", ["bf16", "int8"])
def test_bundled_model_close_to_fp32(ewt, mode):
    assert_close_to_fp32(load_bilm(*default_model_files()), ewt, mode)


@pytest.mark.parametrize("mode", ["bf16", "int8"])
def test_transformer_close_to_fp32(ewt, mode):
    assert_close_to_fp32(load_archive(SHARED / "fixtures" / "transformer-elmo" / "model.tar.gz"), ewt[:40], mode)


@pytest.mark.parametrize("mode", ["bf16", "int8"])
def test_weights_unchanged_by_a_lower_precision_run(fixture_bilm, ewt, mode):
    before = {name: value.clone() for name, value in fixture_bilm.state_dict().items()}
    list(Embedder(fixture_bilm, precision=mode).embed_sentences(ewt[:20]))
    after = fixture_bilm.state_dict()
    assert all(after[name].dtype == torch.float32 and torch.equal(after[name], value) for name, value in before.items())


@pytest.mark.parametrize("mode", ["bf16", "int8"])
def test_changed_weights_are_followed(fixture_dir, ewt, mode):
    """The bf16/int8 copies are remade when a weight changes in place (e.g. an optimizer step)."""
    bilm = load_bilm(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5")
    lowered = Embedder(bilm, precision=mode, cache_size=0)
    before = lowered.embed_sentence(ewt[0])
    with torch.no_grad():
        bilm.lstm.layers[1].w_input.mul_(-1.5)
        bilm.lstm.layers[1].w_proj.mul_(0.5)
    after = lowered.embed_sentence(ewt[0])
    reference = Embedder(bilm, cache_size=0).embed_sentence(ewt[0])
    assert not np.allclose(before[2], after[2], atol=1e-3)
    assert token_cosines([reference], [after], lambda a: a[2]).min() >= 0.99


def test_native_bf16_kernels_match_the_fp32_rounding(fixture_bilm, ewt, monkeypatch):
    """On a CPU without bf16 instructions bf16 is computed as rounded fp32; torch's own bf16 kernels
    (slow there, so only a few sentences) give the same numbers up to summation order."""
    emulated = list(Embedder(fixture_bilm, precision="bf16").embed_sentences(ewt[:8]))
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    native = list(Embedder(fixture_bilm, precision="bf16").embed_sentences(ewt[:8]))
    for a, b in zip(emulated, native):
        np.testing.assert_allclose(a, b, atol=2e-2 * np.abs(a).max())
    assert token_cosines(emulated, native, lambda a: a[-1]).min() >= 0.9999


def test_autograd_computes_in_fp32(fixture_bilm, ewt):
    """Fine-tuning differentiates the fp32 products, whatever precision is set around it."""
    from spacy_elmo.bilm.char_ids import CharBatch

    batch = CharBatch.from_sentences(ewt[:4], fixture_bilm.options.max_characters_per_token)
    with torch.no_grad():
        reference = fixture_bilm.embed(batch)
    for mode in ("bf16", "int8"):
        with precision.compute_precision(mode):
            layers = fixture_bilm.embed(batch)
        assert layers.requires_grad and torch.equal(layers.detach(), reference)


@pytest.mark.parametrize("value", ["fp16", "FP32", None, 8])
def test_unknown_precision_is_one_clear_error(fixture_bilm, value):
    with pytest.raises(InputError, match=r"precision: unknown precision .*; use one of fp32, bf16, int8"):
        Embedder(fixture_bilm, precision=value)
