"""The biLM against the TensorFlow reference outputs of the official fixture model (elmo-spec §5.3-5.5)."""
import json

import h5py
import numpy as np
import torch

from spacy_elmo import CharBatch, load_lstm_bilm, token_to_ids
from spacy_elmo.bilm.batching import batch_layers


def expected_top(fixture_dir, stream, batch_index):
    with h5py.File(fixture_dir / f"lm_embeddings_{stream}.hdf5", "r") as f:
        halves = f[str(batch_index)][()]
    return np.concatenate([halves[0], halves[1]], axis=-1)


def test_stateful_protocol_matches_tensorflow(fixture_dir):
    bilm = load_lstm_bilm(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5")
    sentences = json.loads((fixture_dir / "sentences.json").read_text())
    with torch.inference_mode():
        for i in range(10):
            batch = [sentences[k][i].split() for k in range(3)]
            layers = batch_layers(bilm, CharBatch.from_sentences(batch), stateful=True)
            assert layers.shape[0] == 3 and layers.shape[-1] == 32
            for k, tokens in enumerate(batch):
                got = layers[2, k, 1 : len(tokens) + 1].numpy()
                np.testing.assert_allclose(got, expected_top(fixture_dir, k, i), atol=1e-6, rtol=1e-5)


def test_stateless_differs_from_reference_after_first_batch(fixture_dir):
    """The fixture only holds with carried state; a zero start must not reproduce batch 1 (the test can fail)."""
    bilm = load_lstm_bilm(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5")
    sentences = json.loads((fixture_dir / "sentences.json").read_text())
    batch = [sentences[k][1].split() for k in range(3)]
    with torch.inference_mode():
        layers = batch_layers(bilm, CharBatch.from_sentences(batch), stateful=False)
    got = layers[2, 0, 1 : len(batch[0]) + 1].numpy()
    assert not np.allclose(got, expected_top(fixture_dir, 0, 1), atol=1e-3)


def test_char_cnn_matches_token_embeddings(fixture_dir):
    bilm = load_lstm_bilm(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5")
    vocab = (fixture_dir / "vocab_test.txt").read_text(encoding="utf8").split("\n")
    ids = torch.from_numpy(np.stack([token_to_ids(token) for token in vocab]))
    with torch.inference_mode():
        got = bilm.char_cnn(ids).numpy()
    with h5py.File(fixture_dir / "elmo_token_embeddings.hdf5", "r") as f:
        expected = f["embedding"][()]
    assert got.shape == expected.shape == (458, 16)
    np.testing.assert_allclose(got, expected, atol=1e-5)
