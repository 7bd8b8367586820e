"""The biLM beyond TF parity: stateless invariance, options it must honour, odd tokens, gradients."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from spacy_elmo import BiLM, CharBatch, ElmoOptions, load_bilm, token_to_ids
from spacy_elmo.bilm.embedder import Embedder
from spacy_elmo.errors import ElmoError
from spacy_elmo.bilm.lstm import ElmoLstm

SMALL = ElmoOptions(lstm_dim=24, projection_dim=8, filters=((1, 4), (2, 4), (3, 8)), char_embedding_dim=4,
                    n_layers=2, n_highway=1)


@pytest.fixture(scope="module")
def fixture_embedder(fixture_dir):
    return Embedder.from_files(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5", batch_size=4)


@pytest.fixture(scope="module")
def sentences(fixture_dir):
    return [s.split() for stream in json.loads((fixture_dir / "sentences.json").read_text()) for s in stream]


def random_bilm(options=SMALL, seed=0):
    torch.manual_seed(seed)
    return BiLM(options).eval()


@pytest.mark.slow
def test_stateless_vectors_do_not_depend_on_the_batch(fixture_embedder, sentences):
    target = sentences[4]
    alone = fixture_embedder.embed_sentence(target)
    others = [s for s in sentences if len(s) != len(target)][:5]
    in_batch = fixture_embedder.embed_batch([others[0], target, others[1], others[2]])[1]
    fixture_embedder.embed_batch(others[2:5])
    after_others = fixture_embedder.embed_batch([others[3], target])[1]
    streamed = list(fixture_embedder.embed_sentences(others + [target] + sentences[:7]))[len(others)]
    assert alone.shape == (3, len(target), 32)
    for got in (in_batch, after_others, streamed):
        np.testing.assert_allclose(got, alone, atol=1e-5)


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
        with_skip, without = skip.embed(batch), plain.embed(batch)
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


def test_odd_tokens_give_finite_vectors(fixture_embedder):
    cases = [["猫", "が", "好き"], ["🐱", "👍🏽"], ["e\u0301", "n\u0303o"], [" ", "\t", "\u00a0"], [""], ["x"],
             ["a" * 200]]
    arrays = fixture_embedder.embed_batch(cases)
    for tokens, array in zip(cases, arrays):
        assert array.shape == (3, len(tokens), 32) and array.dtype == np.float32
        assert np.all(np.isfinite(array))
    assert not np.allclose(arrays[3][0, 0], arrays[3][0, 1])


def test_long_tokens_are_cut_after_48_bytes(fixture_embedder):
    assert np.array_equal(token_to_ids("x" * 60), token_to_ids("x" * 48))
    long, cut = fixture_embedder.embed_batch([["the", "x" * 60, "."], ["the", "x" * 48, "."]])
    np.testing.assert_allclose(long, cut, atol=1e-6)


def test_literal_boundary_token_is_a_sentence_boundary(fixture_embedder):
    """'<S>' in the text gets the <S> id, as in both references, so its layer-0 vector is <S>'s."""
    bilm = fixture_embedder.bilm
    with torch.inference_mode():
        layers = bilm.embed(CharBatch.from_sentences([["a", "<S>", "b"]]))
    np.testing.assert_array_equal(layers[0, 0, 2].numpy(), layers[0, 0, 0].numpy())
    assert not torch.equal(layers[0, 0, 1], layers[0, 0, 0])


def test_empty_sentence_and_empty_input(fixture_embedder):
    assert fixture_embedder.embed_batch([]) == []
    assert list(fixture_embedder.embed_sentences([])) == []
    empty, one = fixture_embedder.embed_batch([[], ["word"]])
    assert empty.shape == (3, 0, 32) and one.shape == (3, 1, 32)
    with pytest.raises(ElmoError, match="found a string"):
        fixture_embedder.embed_batch("not tokenised")
    with pytest.raises(ElmoError, match="token 1 is int"):
        fixture_embedder.embed_batch([["ok", 3]])


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
    bilm = load_bilm(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5")
    assert not bilm.training and bilm.options.n_output_layers == 3


def test_token_vector_cache_skips_known_tokens_and_changes_nothing(fixture_dir, sentences):
    cached = Embedder.from_files(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5", batch_size=4)
    plain = Embedder(cached.bilm, batch_size=4, cache_size=0)
    rows = []
    hook = cached.bilm.char_cnn.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[0]))
    first = cached.embed_batch(sentences[:3])
    again = cached.embed_batch([sentences[1], sentences[0] + ["unseen-token"]])
    hook.remove()
    assert rows[1] == 1
    expected = plain.embed_batch(sentences[:3]) + plain.embed_batch([sentences[1], sentences[0] + ["unseen-token"]])
    for got, want in zip(first + again, expected):
        np.testing.assert_allclose(got, want, atol=1e-6)
    with torch.no_grad():
        cached.bilm.char_cnn.projection.bias.add_(1.0)
    stale = cached.embed_sentence(sentences[1])
    cached.clear_cache()
    np.testing.assert_allclose(cached.embed_sentence(sentences[1]), plain.embed_sentence(sentences[1]), atol=1e-6)
    assert not np.allclose(stale, plain.embed_sentence(sentences[1]), atol=1e-3)
