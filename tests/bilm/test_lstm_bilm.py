"""The LSTM biLM beyond TF parity: state carried between batches, the options it must honour, the masked
LSTM's gradients and final states (what every biLM promises is in test_interface.py)."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from spacy_elmo import CharBatch, LstmBiLM, LstmOptions, load_lstm_bilm, token_to_ids
from spacy_elmo.bilm.batching import batch_layers
from spacy_elmo.embedder import Embedder
from spacy_elmo.bilm.lstm import ElmoLstm

SMALL = LstmOptions(lstm_dim=24, projection_dim=8, filters=((1, 4), (2, 4), (3, 8)), char_embedding_dim=4,
                    n_layers=2, n_highway=1)


@pytest.fixture(scope="module")
def sentences(fixture_dir):
    return [s.split() for stream in json.loads((fixture_dir / "sentences.json").read_text()) for s in stream]


def random_bilm(options=SMALL, seed=0):
    torch.manual_seed(seed)
    return LstmBiLM(options).eval()


@pytest.mark.slow
def test_stateful_vectors_do_depend_on_earlier_batches(fixture_dir, sentences):
    embedder = Embedder.from_files(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5", stateful=True)
    first = embedder.embed_sentence(sentences[0])
    again = embedder.embed_sentence(sentences[0])
    assert not np.allclose(first, again, atol=1e-4)
    embedder.reset_state()
    np.testing.assert_array_equal(embedder.embed_sentence(sentences[0]), first)


def test_no_skip_connections_drop_the_residual():
    """With skip connections layer 2 is its LSTM output plus layer 1; without, the LSTM output alone."""
    skip = random_bilm(replace(SMALL, use_skip_connections=True))
    plain = random_bilm(replace(SMALL, use_skip_connections=False))
    plain.load_state_dict(skip.state_dict())
    batch = CharBatch.from_sentences([["a", "small", "test"], ["two", "rows", "of", "it", "."]])
    with torch.inference_mode():
        with_skip, without = batch_layers(skip, batch), batch_layers(plain, batch)
    np.testing.assert_array_equal(with_skip[:2].numpy(), without[:2].numpy())
    assert not torch.allclose(with_skip[2], without[2], atol=1e-3)
    np.testing.assert_allclose((with_skip[2] - without[2]).numpy(), with_skip[1].numpy(), atol=1e-6)


def test_char_cnn_skips_padding_columns_exactly():
    bilm = random_bilm(replace(SMALL, activation="tanh"))
    short = ["a", "of", "token", "é", "<S>"]
    with torch.no_grad():
        trimmed = bilm.char_cnn(torch.from_numpy(np.stack([token_to_ids(t) for t in short])))
        full_width = bilm.char_cnn(torch.from_numpy(np.stack([token_to_ids(t) for t in short + ["x" * 48]])))
    np.testing.assert_allclose(trimmed.numpy(), full_width[: len(short)].numpy(), atol=1e-6)


@pytest.mark.slow
def test_masked_lstm_gradients_match_finite_differences():
    torch.manual_seed(0)
    lstm = ElmoLstm(3, 5, 2, cell_clip=3.0, proj_clip=3.0).double()
    inputs = torch.randn(2, 3, 4, 3, dtype=torch.double, requires_grad=True)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True], [True, False, False, False]])

    def run(x):
        outputs, (cell, hidden) = lstm(x, mask)
        return outputs[-1], cell, hidden

    assert torch.autograd.gradcheck(run, (inputs,), eps=1e-6, atol=1e-5)
    with pytest.raises(ValueError, match="prefix mask"):
        lstm(inputs, torch.tensor([[True, False, True, False]] * 3))


def test_padding_rows_keep_their_final_state():
    """A short row's final state is the state after its last token, not after the padding."""
    lstm = ElmoLstm(3, 5, 1).eval()
    x = torch.randn(2, 2, 4, 3)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    with torch.no_grad():
        _, (cell, hidden) = lstm(x, mask)
        _, (cell_short, hidden_short) = lstm(x[:, :1, :2], None)
    np.testing.assert_allclose(cell[:, :, 0].numpy(), cell_short[:, :, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(hidden[:, :, 0].numpy(), hidden_short[:, :, 0].numpy(), atol=1e-6)


def test_fixture_model_loads_in_eval_mode(fixture_dir):
    bilm = load_lstm_bilm(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5")
    assert not bilm.training and bilm.options.n_output_layers == 3
