"""Transformer ELMo: AllenNLP archive in, allennlp-models' reference outputs out (every layer and the mix),
through the biLM, the Embedder and the `embed` command; the archive variants AllenNLP wrote over the years;
bad archives; the shared biLM interface; writing an archive back."""
import io
import json
import shutil
import tarfile

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from spacy_elmo.bilm.archive import (CONFIG_NAME, WEIGHTS_NAME, load_archive, options_from_config, read_archive,
                                     write_archive)
from spacy_elmo.bilm.char_ids import CharBatch
from spacy_elmo.bilm.batching import batch_layers
from spacy_elmo.embedder import Embedder
from spacy_elmo.bilm.interface import ContextualBiLM
from spacy_elmo.bilm.loading import bilm_config, bilm_from_config, load_any_bilm
from spacy_elmo.bilm.scalar_mix import ScalarMix
from spacy_elmo.bilm.transformer_bilm import TransformerBiLM, TransformerOptions
from spacy_elmo.bilm.weights import load_lstm_bilm
from spacy_elmo.cli.app import app
from spacy_elmo.errors import InputError, OptionsError, WeightsError

from conftest import TRANSFORMER_FIXTURES as TRANSFORMER

ATOL = 1e-5


@pytest.fixture(scope="module")
def archive_path():
    assert (TRANSFORMER / "model.tar.gz").is_file(), f"transformer fixture not found at {TRANSFORMER}"
    return TRANSFORMER / "model.tar.gz"


@pytest.fixture(scope="module")
def bilm(archive_path):
    return load_archive(archive_path)


@pytest.fixture(scope="module")
def batches():
    return json.loads((TRANSFORMER / "sentences.json").read_text(encoding="utf8"))


@pytest.fixture(scope="module")
def reference():
    with h5py.File(TRANSFORMER / "reference.hdf5", "r") as f:
        return {name: f[name][()] for name in _datasets(f)}


def _datasets(f):
    names = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


@pytest.fixture
def unpacked(archive_path, tmp_path):
    """The archive's folder, to be modified by a test."""
    folder = tmp_path / "unpacked"
    with tarfile.open(archive_path) as tar:
        tar.extractall(folder, filter="data")
    return folder


def run_batch(model, sentences):
    with torch.inference_mode():
        layers = batch_layers(model, CharBatch.from_sentences(sentences))
    return [layers[:, b, 1 : len(s) + 1].numpy() for b, s in enumerate(sentences)]


def assert_matches_reference(model, batches, reference, only=None):
    for i, sentences in enumerate(batches):
        if only is not None and i not in only:
            continue
        for j, found in enumerate(run_batch(model, sentences)):
            np.testing.assert_allclose(found, reference[f"{i}/{j}/layers"], atol=ATOL, rtol=0)


def test_every_layer_and_the_mix_reproduce_allennlp(bilm, batches, reference):
    assert bilm.n_output_layers == 3 and bilm.output_dim == 32
    mix = ScalarMix(bilm.n_output_layers)
    for i, sentences in enumerate(batches):
        for j, found in enumerate(run_batch(bilm, sentences)):
            expected = reference[f"{i}/{j}/layers"]
            assert found.shape == expected.shape == (3, len(sentences[j]), 32)
            np.testing.assert_allclose(found, expected, atol=ATOL, rtol=0)
            with torch.no_grad():
                mixed = mix(torch.from_numpy(found)).numpy()
            np.testing.assert_allclose(mixed, reference[f"{i}/{j}/mix"], atol=ATOL, rtol=0)


def test_embed_command_writes_every_layer_per_line(archive_path, batches, reference, tmp_path):
    lines = [" ".join(s) for sentences in batches for s in sentences]
    keys = [f"{i}/{j}" for i, sentences in enumerate(batches) for j in range(len(sentences))]
    source = tmp_path / "in.txt"
    source.write_text("".join(line + "\n" for line in lines), encoding="utf8")
    for layers, suffix in (("all", "layers"), ("average", "mix")):
        output = tmp_path / f"{layers}.hdf5"
        result = CliRunner().invoke(app, ["embed", str(source), str(output), "--archive", str(archive_path),
                                          "--layers", layers, "--batch-size", "2"])
        assert result.exit_code == 0, result.output
        with h5py.File(output, "r") as f:
            assert sorted(k for k in f if k != "sentence_to_index") == sorted(str(i) for i in range(len(lines)))
            for i, key in enumerate(keys):
                expected = reference[f"{key}/{suffix}"]
                assert f[str(i)].shape == expected.shape
                np.testing.assert_allclose(f[str(i)][()], expected, atol=ATOL, rtol=0)


def test_a_token_sees_only_its_side_in_each_direction(bilm):
    """Changing the last word leaves the forward half of earlier words unchanged, and vice versa."""
    half = bilm.options.input_dim
    a, b = run_batch(bilm, [["the", "cat", "sat", "down"], ["the", "cat", "sat", "up"]])
    np.testing.assert_allclose(a[1:, :3, :half], b[1:, :3, :half], atol=1e-6, rtol=0)
    assert np.abs(a[1:, :3, half:] - b[1:, :3, half:]).max() > 1e-3
    c, d = run_batch(bilm, [["a", "cat", "sat"], ["one", "cat", "sat"]])
    np.testing.assert_allclose(c[1:, 1:, half:], d[1:, 1:, half:], atol=1e-6, rtol=0)
    assert np.abs(c[1:, 1:, :half] - d[1:, 1:, :half]).max() > 1e-3


def _write_config(folder, edit):
    config = json.loads((folder / CONFIG_NAME).read_text())
    edit(config["model"])
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    return folder


def _char_indexer(folder, kind):
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["dataset_reader"]["token_indexers"]["token_characters"]["type"] = kind
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    return folder


def _old_spelling(model):
    model["type"] = "bidirectional-language-model"
    del model["bidirectional"]
    del model["text_field_embedder"]["token_embedders"]["tokens"]


def _underscore_spelling(model):
    model["type"] = "bidirectional_language_model"
    del model["bidirectional"]


def _no_tokens_embedder(model):
    del model["text_field_embedder"]["token_embedders"]["tokens"]


@pytest.mark.parametrize("edit", [_old_spelling, _underscore_spelling, _no_tokens_embedder])
def test_archive_variants_load(unpacked, edit, batches, reference):
    model = load_any_bilm(_write_config(unpacked, edit))
    assert isinstance(model, TransformerBiLM)
    assert_matches_reference(model, batches, reference, only={1})


def test_unpacked_folder_loads(unpacked, batches, reference):
    assert_matches_reference(load_any_bilm(unpacked), batches, reference, only={0})


def _edit_state(folder, edit):
    state = torch.load(folder / WEIGHTS_NAME, weights_only=True)
    edit(state)
    torch.save(state, folder / WEIGHTS_NAME)
    return folder


def _tar_with_member(tmp_path, name):
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        data = b"{}"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def _file(path, data):
    path.write_bytes(data)
    return path


class Evil:
    def __reduce__(self):
        return (print, ("unpickled",))


BAD_ARCHIVES = {
    "other model type": (lambda d, t: _write_config(d, lambda m: m.update(type="simple_tagger")),
                         OptionsError, "'simple_tagger' is not a bidirectional language model"),
    "forward-only LM": (lambda d, t: _write_config(d, lambda m: m.update(bidirectional=False)),
                        OptionsError, "forward-only"),
    "LSTM contextualizer": (lambda d, t: _write_config(d, lambda m: m["contextualizer"].update(type="lstm")),
                            OptionsError, "contextualizer type 'lstm' is not supported"),
    "other character ids": (lambda d, t: _char_indexer(d, "characters"), OptionsError,
                            "only 'elmo_characters' ids are supported"),
    "missing weight": (lambda d, t: _edit_state(d, lambda s: s.pop(
        "_contextualizer._backward_transformer.layers.1.feed_forward.w_2.weight")),
        WeightsError, "missing weight '_contextualizer._backward_transformer.layers.1.feed_forward.w_2.weight'"),
    "wrong shape": (lambda d, t: _edit_state(d, lambda s: s.update({
        "_contextualizer._forward_transformer.norm.gamma": torch.ones(15)})),
        WeightsError, "has shape (15,), expected (16,)"),
    "more layers than the config": (lambda d, t: _write_config(d, lambda m: m["contextualizer"].update(num_layers=1)),
                                    WeightsError, "config and weights disagree"),
    "NaN weight": (lambda d, t: _edit_state(d, lambda s: s[
        "_contextualizer._forward_transformer.norm.beta"].fill_(float("nan"))), WeightsError, "NaN"),
    "pickled object": (lambda d, t: torch.save({"x": Evil()}, d / WEIGHTS_NAME) or d,
                       WeightsError, "weights_only=True"),
    "member escaping the folder": (lambda d, t: _tar_with_member(t, "../config.json"),
                                   WeightsError, "points outside the archive"),
    "absolute member": (lambda d, t: _tar_with_member(t, "/etc/config.json"), WeightsError, "points outside"),
    "no weights": (lambda d, t: _tar_with_member(t, "config.json"), WeightsError, "no file weights.th"),
    "truncated tar": (lambda d, t: _file(t / "cut.tar.gz", (TRANSFORMER / "model.tar.gz").read_bytes()[:150_000]),
                      WeightsError, "unreadable model archive"),
    "corrupt weights": (lambda d, t: _file(d / WEIGHTS_NAME, b"PK\x03\x04 not a state dict") and d,
                        WeightsError, "is not a torch state dict"),
    "not a tar": (lambda d, t: _file(t / "model.tar.gz", b"\x1f\x8b not really gzip"),
                  WeightsError, "not a model archive"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARCHIVES))
def test_bad_archives_give_one_clear_error(case, unpacked, tmp_path, capsys):
    make, error, message = BAD_ARCHIVES[case]
    path = make(unpacked, tmp_path)
    with pytest.raises(error) as caught:
        load_archive(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert "unpickled" not in capsys.readouterr().out


def test_bad_archive_through_the_command_is_one_line(unpacked, tmp_path):
    path = _edit_state(unpacked, lambda s: s.pop("_contextualizer._forward_transformer.norm.beta"))
    source = tmp_path / "in.txt"
    source.write_text("a b\n", encoding="utf8")
    result = CliRunner().invoke(app, ["embed", str(source), str(tmp_path / "out.hdf5"), "--archive", str(path)])
    assert result.exit_code != 0
    assert "missing weight '_contextualizer._forward_transformer.norm.beta'" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out.hdf5").exists()


def test_any_loader_reads_an_options_and_hdf5_folder(fixture_dir, tmp_path):
    shutil.copy(fixture_dir / "options.json", tmp_path / "options.json")
    shutil.copy(fixture_dir / "lm_weights.hdf5", tmp_path / "weights.hdf5")
    model = load_any_bilm(tmp_path)
    assert type(model).__name__ == "LstmBiLM" and model.supports_state
    with pytest.raises(WeightsError, match="not both|one or the other"):
        load_any_bilm(tmp_path, options_file=tmp_path / "options.json", weight_file=tmp_path / "weights.hdf5")


def test_not_a_model_path(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(WeightsError, match="not a biLM"):
        load_any_bilm(tmp_path)
    with pytest.raises(WeightsError, match="not found"):
        load_any_bilm(tmp_path / "missing.tar.gz")


def test_stateful_use_is_refused(bilm):
    with pytest.raises(InputError, match="stateful=True needs"):
        Embedder(bilm, stateful=True)
    batch = CharBatch.from_sentences([["a"]])
    with pytest.raises(InputError, match="no state"):
        batch_layers(bilm, batch, stateful=True)


def test_both_biLMs_share_the_interface(bilm, fixture_dir, batches):
    lstm = load_lstm_bilm(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5")
    sentences = batches[1]
    for model in (lstm, bilm):
        assert isinstance(model, ContextualBiLM)
        rebuilt = bilm_from_config(json.loads(json.dumps(bilm_config(model))))
        assert type(rebuilt) is type(model) and rebuilt.options == model.options
        rebuilt.load_state_dict(model.state_dict())
        rebuilt.eval()
        for a, b in zip(run_batch(model, sentences), run_batch(rebuilt, sentences)):
            np.testing.assert_array_equal(a, b)
        found = Embedder(model).embed_batch(sentences)
        assert [f.shape for f in found] == [(model.n_output_layers, len(s), model.output_dim) for s in sentences]
    assert lstm.supports_state and not bilm.supports_state
    with pytest.raises(OptionsError, match="unknown biLM kind 'gru'"):
        bilm_from_config({"kind": "gru", "options": {}})


@pytest.mark.parametrize("name", ["model.tar.gz", "folder"])
def test_written_archive_reads_back_in_allennlp_layout(bilm, archive_path, batches, tmp_path, name):
    path = write_archive(bilm, tmp_path / name)
    reread = load_archive(path)
    for a, b in zip(run_batch(bilm, batches[2]), run_batch(reread, batches[2])):
        np.testing.assert_array_equal(a, b)
    config, state = read_archive(path)
    original_config, original = read_archive(archive_path)
    bilm_keys = {k for k in original if not k.startswith(("_softmax_loss", "_last_average_loss"))}
    assert set(state) == bilm_keys
    for key in bilm_keys:
        assert state[key].shape == original[key].shape
        torch.testing.assert_close(state[key], original[key], atol=1e-6, rtol=0)
    assert options_from_config(config, "written") == options_from_config(original_config, "original")
    with pytest.raises(WeightsError, match="not empty"):
        write_archive(bilm, _occupied(tmp_path))


def _occupied(tmp_path):
    folder = tmp_path / "occupied"
    folder.mkdir(exist_ok=True)
    (folder / "keep.txt").write_text("mine")
    return folder


def test_fresh_model_has_the_published_shape():
    from spacy_elmo.bilm.options import PUBLISHED_FILTERS

    options = TransformerOptions(input_dim=512, hidden_dim=2048, n_layers=6, filters=PUBLISHED_FILTERS,
                                 char_embedding_dim=16, n_highway=2)
    assert TransformerOptions.from_dict(options.to_dict()) == options
    model = TransformerBiLM(options).eval()
    assert model.n_output_layers == 7 and model.output_dim == 1024
    with pytest.raises(OptionsError, match="multiple of n_heads"):
        TransformerOptions(input_dim=20, hidden_dim=8, n_layers=1, filters=[(1, 4)], char_embedding_dim=4)
