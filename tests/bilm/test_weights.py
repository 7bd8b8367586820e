"""Official options.json + HDF5 files: exact round trips, optional datasets, and every bad file a clear error."""
import json
import shutil

import h5py
import numpy as np
import pytest
import torch

from spacy_elmo import CharBatch, LstmBiLM, LstmOptions, load_lstm_bilm, save_lstm_bilm
from spacy_elmo.bilm.batching import batch_layers
from spacy_elmo.errors import OptionsError, WeightsError

BATCH = [["The", "first", "sentence", "."], ["Second", "one"], ["x"]]


def datasets(path):
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: found.__setitem__(name, (obj.shape, obj.dtype))
                     if isinstance(obj, h5py.Dataset) else None)
    return found


def outputs(bilm):
    with torch.inference_mode():
        return batch_layers(bilm, CharBatch.from_sentences(BATCH)).numpy()


def round_trip(bilm, tmp_path):
    save_lstm_bilm(bilm, tmp_path / "options.json", tmp_path / "weights.hdf5")
    return load_lstm_bilm(tmp_path / "options.json", tmp_path / "weights.hdf5")


@pytest.fixture
def fixture_options(fixture_dir):
    return json.loads((fixture_dir / "options.json").read_text())


def test_write_read_is_bit_identical_in_the_official_layout(fixture_dir, tmp_path):
    bilm = load_lstm_bilm(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5")
    again = round_trip(bilm, tmp_path)
    np.testing.assert_array_equal(outputs(again), outputs(bilm))
    assert datasets(tmp_path / "weights.hdf5") == datasets(fixture_dir / "lm_weights.hdf5")
    assert again.options == bilm.options


@pytest.mark.parametrize("options", [
    LstmOptions(lstm_dim=24, projection_dim=16, filters=((1, 4), (2, 12)), char_embedding_dim=4, n_highway=1),
    LstmOptions(lstm_dim=16, projection_dim=16, filters=((1, 4), (2, 8)), char_embedding_dim=4),
    LstmOptions(lstm_dim=24, projection_dim=8, filters=((1, 4), (2, 8)), char_embedding_dim=4,
                use_skip_connections=False, activation="tanh", cell_clip=None, proj_clip=None, n_layers=3),
], ids=["F==P no CNN_proj", "P==C no W_P_0", "no skip, tanh, no clips, 3 layers"])
def test_optional_parts_round_trip(options, tmp_path):
    torch.manual_seed(0)
    bilm = LstmBiLM(options).eval()
    again = round_trip(bilm, tmp_path)
    names = datasets(tmp_path / "weights.hdf5")
    np.testing.assert_array_equal(outputs(again), outputs(bilm))
    assert again.options == options
    assert ("CNN_proj/W_proj" in names) == (options.n_filters != options.projection_dim)
    w_p = "RNN_0/RNN/MultiRNNCell/Cell0/LSTMCell/W_P_0"
    assert (w_p in names) == (options.projection_dim < options.lstm_dim)
    hidden = min(options.projection_dim, options.lstm_dim)
    assert names["RNN_1/RNN/MultiRNNCell/Cell0/LSTMCell/W_0"][0] == (options.projection_dim + hidden,
                                                                    4 * options.lstm_dim)


def truncated(fixture_dir, tmp_path):
    data = (fixture_dir / "lm_weights.hdf5").read_bytes()
    (tmp_path / "half.hdf5").write_bytes(data[: len(data) // 2])
    return tmp_path / "half.hdf5"


def with_nan(fixture_dir, tmp_path):
    shutil.copy(fixture_dir / "lm_weights.hdf5", tmp_path / "nan.hdf5")
    with h5py.File(tmp_path / "nan.hdf5", "r+") as f:
        f["CNN_high_0/b_carry"][0] = np.nan
    return tmp_path / "nan.hdf5"


@pytest.mark.parametrize("make_file,message", [
    (lambda fixtures, tmp: tmp / "nope.hdf5", "weight file not found: .*nope.hdf5"),
    (truncated, "half.hdf5: not a readable HDF5 weight file"),
    (lambda fixtures, tmp: fixtures / "options.json", "options.json: not a readable HDF5 weight file"),
    (lambda fixtures, tmp: fixtures / "elmo_token_embeddings.hdf5", "holds token embeddings"),
    (with_nan, "dataset 'CNN_high_0/b_carry' contains NaN"),
], ids=["missing", "truncated", "not HDF5", "token embeddings", "NaN"])
def test_bad_weight_file(fixture_dir, tmp_path, make_file, message):
    with pytest.raises(WeightsError, match=message):
        load_lstm_bilm(fixture_dir / "options.json", make_file(fixture_dir, tmp_path))


def test_missing_options_file(fixture_dir, tmp_path):
    with pytest.raises(OptionsError, match="options file not found"):
        load_lstm_bilm(tmp_path / "nope.json", fixture_dir / "lm_weights.hdf5")


@pytest.mark.parametrize("section,key,value,error,message", [
    ("char_cnn", "n_highway", 1, WeightsError, r"CNN_high_1.*n_highway=1"),
    ("char_cnn", "n_highway", 3, WeightsError, r"missing dataset 'CNN_high_2/.*n_highway=3"),
    ("lstm", "n_layers", 1, WeightsError, r"Cell1.*n_layers=1"),
    ("lstm", "n_layers", 3, WeightsError, r"missing dataset 'RNN_0/RNN/MultiRNNCell/Cell2.*n_layers=3"),
    ("lstm", "projection_dim", 8, WeightsError, r"'CNN_proj/W_proj' has shape \(124, 16\), expected \(124, 8\)"),
    ("lstm", "dim", 32, WeightsError, r"LSTMCell/W_0' has shape \(32, 256\), expected \(32, 128\)"),
    ("char_cnn", "filters", [[1, 4], [2, 8]], WeightsError,
     r"'CNN_high_0/W_carry' has shape \(124, 124\), expected \(12, 12\)"),
    ("char_cnn", "filters", [[1, 4], [2, 8], [3, 16], [4, 32], [5, 64], [6, 1]], WeightsError,
     r"missing dataset 'CNN/W_cnn_5'.*6 filters"),
    ("char_cnn", "activation", "gelu", OptionsError, r"char_cnn.activation.*gelu"),
    ("lstm", "use_skip_connections", None, OptionsError, r"missing key 'lstm.use_skip_connections'"),
    ("lstm", "dim", None, OptionsError, r"missing key 'lstm.dim'"),
])
def test_options_inconsistent_with_weights(fixture_dir, fixture_options, tmp_path, section, key, value, error,
                                           message):
    if value is None:
        del fixture_options[section][key]
    else:
        fixture_options[section][key] = value
    (tmp_path / "options.json").write_text(json.dumps(fixture_options))
    with pytest.raises(error, match=message):
        load_lstm_bilm(tmp_path / "options.json", fixture_dir / "lm_weights.hdf5")


def test_unreadable_options_json(fixture_dir, tmp_path):
    (tmp_path / "options.json").write_text("{not json")
    with pytest.raises(OptionsError, match="not a valid JSON options file"):
        load_lstm_bilm(tmp_path / "options.json", fixture_dir / "lm_weights.hdf5")
