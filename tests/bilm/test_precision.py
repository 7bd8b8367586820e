"""Run-time precision of the biLM: fp16, bf16 and int8 stay close to fp32 (per-token cosine on EWT dev, on the
reference fixture, the bundled model and the transformer fixture), change no weight, follow weights that
change, fall back to fp32 under autograd; bad values are one clear error."""
import numpy as np
import pytest
import torch

from spacy_elmo.bilm import precision
from spacy_elmo.bilm.archive import load_archive
from spacy_elmo.bilm.batching import batch_layers
from spacy_elmo.embedder import Embedder
from spacy_elmo.bilm.weights import load_lstm_bilm
from spacy_elmo.errors import InputError
from spacy_elmo.hub import resolve_model_files

from conftest import ROOT, TRANSFORMER_ARCHIVE, load_module

read_conllu, token_cosines = (getattr(load_module(ROOT / "benchmarks" / "common.py"), name)
                              for name in ("read_conllu", "token_cosines"))

N_SENTENCES = 150


@pytest.fixture(scope="module")
def ewt(data_dir):
    return read_conllu(data_dir / "ud-english-ewt" / "en_ewt-ud-dev.conllu", N_SENTENCES)


def assert_close_to_fp32(bilm, sentences, mode):
    reference = list(Embedder(bilm).embed_sentences(sentences))
    lowered = list(Embedder(bilm, precision=mode).embed_sentences(sentences))
    assert any(not np.array_equal(r, o) for r, o in zip(reference, lowered)), f"{mode} computed exactly fp32"
    for view, pick in (("top", lambda a: a[-1]), ("average", lambda a: a.mean(0))):
        cosines = token_cosines(reference, lowered, pick)
        assert cosines.mean() >= 0.999 and cosines.min() >= 0.99, (mode, view, cosines.mean(), cosines.min())


@pytest.fixture(scope="module")
def fixture_bilm(fixture_dir):
    return load_lstm_bilm(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5")


@pytest.mark.parametrize("mode", ["fp16", "bf16", "int8"])
def test_fixture_model_close_to_fp32(fixture_bilm, ewt, mode):
    assert_close_to_fp32(fixture_bilm, ewt, mode)


@pytest.mark.parametrize("mode", ["fp16", "bf16", "int8"])
def test_bundled_model_close_to_fp32(ewt, mode):
    assert_close_to_fp32(load_lstm_bilm(*resolve_model_files()), ewt, mode)


@pytest.mark.parametrize("mode", ["fp16", "bf16", "int8"])
def test_transformer_close_to_fp32(ewt, mode):
    assert_close_to_fp32(load_archive(TRANSFORMER_ARCHIVE), ewt[:40], mode)


@pytest.mark.parametrize("mode", ["fp16", "bf16", "int8"])
def test_vectors_do_not_depend_on_the_batch(fixture_bilm, ewt, mode):
    """As in fp32 (within 1e-5): int8 gives every row its own activation scale, not one per batch."""
    embedder = Embedder(fixture_bilm, precision=mode, cache_size=0)
    together = embedder.embed_batch(ewt[:12])
    for sentence, batched in zip(ewt[:12], together):
        np.testing.assert_allclose(embedder.embed_sentence(sentence), batched, rtol=0, atol=1e-5)


@pytest.mark.parametrize("mode", ["fp16", "bf16", "int8"])
def test_weights_unchanged_by_a_lower_precision_run(fixture_bilm, ewt, mode):
    before = {name: value.clone() for name, value in fixture_bilm.state_dict().items()}
    list(Embedder(fixture_bilm, precision=mode).embed_sentences(ewt[:20]))
    after = fixture_bilm.state_dict()
    assert all(after[name].dtype == torch.float32 and torch.equal(after[name], value) for name, value in before.items())


@pytest.mark.parametrize("mode", ["fp16", "bf16", "int8"])
def test_changed_weights_are_followed(fixture_dir, ewt, mode):
    """The bf16/int8 copies are remade when a weight changes in place (e.g. an optimizer step)."""
    bilm = load_lstm_bilm(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5")
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
    """Fine-tuning differentiates the fp32 products, whatever precision it is handed."""
    from spacy_elmo.bilm.char_ids import CharBatch

    batch = CharBatch.from_sentences(ewt[:4], fixture_bilm.options.max_characters_per_token)
    reference = batch_layers(fixture_bilm, batch)
    with torch.no_grad():
        inference = batch_layers(fixture_bilm, batch)
    torch.testing.assert_close(reference.detach(), inference, rtol=0, atol=1e-5)
    for mode in ("fp16", "bf16", "int8"):
        layers = batch_layers(fixture_bilm, batch, precision=mode)
        assert layers.requires_grad and torch.equal(layers.detach(), reference.detach())


def test_precision_is_passed_down_not_kept(fixture_bilm, ewt):
    """batch_layers and the biLM's forward compute in the precision they are handed, call by call: two
    Embedders of different precisions interleaved each get their own numbers, and the Embedder's are
    those of batch_layers given its precision."""
    from spacy_elmo.bilm.char_ids import CharBatch

    batch = CharBatch.from_sentences(ewt[:4], fixture_bilm.options.max_characters_per_token)
    with torch.no_grad():
        alone = {mode: batch_layers(fixture_bilm, batch, precision=mode) for mode in ("fp32", "bf16")}
        ids, index, lengths = (torch.from_numpy(a) for a in (batch.unique, batch.index, batch.lengths))
        assert torch.equal(fixture_bilm(ids, index, lengths, precision="bf16"), alone["bf16"])
    assert not torch.equal(alone["fp32"], alone["bf16"])
    embedders = {mode: Embedder(fixture_bilm, precision=mode, cache_size=0) for mode in ("fp32", "bf16")}
    for _ in range(2):
        for mode, embedder in embedders.items():
            assert torch.equal(embedder.layers(batch), alone[mode])
    with pytest.raises(InputError, match="unknown precision 'half'"):
        batch_layers(fixture_bilm, batch, precision="half")


@pytest.mark.parametrize("value", ["fp8", "FP32", None, 8])
def test_unknown_precision_is_one_clear_error(fixture_bilm, value):
    with pytest.raises(InputError, match=r"precision: unknown precision .*; use one of fp32, fp16, bf16, int8"):
        Embedder(fixture_bilm, precision=value)


def elmo_pipeline(fixture_dir, **model):
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"model": {"options_file": str(fixture_dir / "options.json"),
                                           "weight_file": str(fixture_dir / "lm_weights.hdf5"), **model}})
    nlp.initialize()
    return nlp


def test_component_precision_from_its_config(fixture_dir, ewt, tmp_path):
    texts = [" ".join(words) for words in ewt[:30]]
    reference = [doc._.elmo for doc in elmo_pipeline(fixture_dir).pipe(texts)]
    nlp = elmo_pipeline(fixture_dir, precision="int8")
    assert nlp.get_pipe("elmo").model.attrs["precision"] == "int8"
    lowered = [doc._.elmo for doc in nlp.pipe(texts)]
    assert any(not np.array_equal(r, o) for r, o in zip(reference, lowered))
    assert token_cosines(reference, lowered, lambda a: a[-1]).min() >= 0.99
    nlp.to_disk(tmp_path / "nlp")
    import spacy

    loaded = spacy.load(tmp_path / "nlp")
    assert loaded.config["components"]["elmo"]["model"]["precision"] == "int8"
    np.testing.assert_allclose(loaded(texts[0])._.elmo, lowered[0], rtol=0, atol=1e-5)


def test_component_rejects_an_unknown_precision(fixture_dir):
    with pytest.raises(InputError, match=r"precision: unknown precision 'half'; use one of fp32, fp16, bf16, int8"):
        elmo_pipeline(fixture_dir, precision="half")


def test_embed_command_precision(fixture_dir, ewt, tmp_path):
    import h5py
    from typer.testing import CliRunner

    from spacy_elmo.cli.app import app

    source = tmp_path / "in.txt"
    source.write_text("\n".join(" ".join(words) for words in ewt[:20]) + "\n", encoding="utf8")
    model = ["--options-file", str(fixture_dir / "options.json"), "--weight-file", str(fixture_dir / "lm_weights.hdf5")]
    outputs = {}
    for mode in ("fp32", "bf16"):
        result = CliRunner().invoke(app, ["embed", str(source), str(tmp_path / f"{mode}.hdf5"), *model,
                                          "--precision", mode])
        assert result.exit_code == 0, result.output
        with h5py.File(tmp_path / f"{mode}.hdf5", "r") as f:
            outputs[mode] = [f[str(i)][()] for i in range(20)]
    expected = list(Embedder(load_lstm_bilm(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5"),
                             precision="bf16").embed_sentences(ewt[:20]))
    for got, want in zip(outputs["bf16"], expected):
        np.testing.assert_array_equal(got, want)
    assert any(not np.array_equal(a, b) for a, b in zip(outputs["fp32"], outputs["bf16"]))
    bad = CliRunner().invoke(app, ["embed", str(source), str(tmp_path / "x.hdf5"), *model, "--precision", "fp8"])
    assert bad.exit_code == 2 and "'fp8' is not one of fp32, fp16, bf16, int8" in bad.output
    assert not (tmp_path / "x.hdf5").exists()
