"""What every biLM promises through the shared interface, checked on both architectures (the official
LSTM test model and the Transformer-ELMo test archive): vectors independent of the batch and its
padding, layer 0 the char-CNN vector, odd and long tokens, boundaries, empty input, the token cache."""
import copy
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from spacy_elmo import CharBatch, Embedder, load_any_bilm, token_to_ids
from spacy_elmo.bilm.batching import batch_layers
from spacy_elmo.errors import ElmoError

from conftest import TRANSFORMER_ARCHIVE

ATOL = 1e-5


@pytest.fixture(scope="module", params=["lstm", "transformer"])
def bilm(request, fixture_dir):
    if request.param == "lstm":
        return load_any_bilm(options_file=fixture_dir / "options.json", weight_file=fixture_dir / "lm_weights.hdf5")
    return load_any_bilm(TRANSFORMER_ARCHIVE)


@pytest.fixture(scope="module")
def sentences(fixture_dir):
    return [s.split() for stream in json.loads((fixture_dir / "sentences.json").read_text()) for s in stream]


def forward(bilm, batch: CharBatch) -> torch.Tensor:
    with torch.inference_mode():
        return batch_layers(bilm, batch)


def test_vectors_do_not_depend_on_the_batch_or_its_padding(bilm, sentences):
    chosen = sentences[:6]
    alone = [Embedder(bilm).embed_sentence(s) for s in chosen]
    for batch_size in (1, 4, 6):
        embedder = Embedder(bilm, batch_size=batch_size)
        reversed_batch = embedder.embed_batch(chosen[::-1])[::-1]
        streamed = list(embedder.embed_sentences(chosen))
        for want, got_reversed, got_streamed in zip(alone, reversed_batch, streamed):
            np.testing.assert_allclose(got_reversed, want, atol=ATOL, rtol=0)
            np.testing.assert_allclose(got_streamed, want, atol=ATOL, rtol=0)
    batch = CharBatch.from_sentences(chosen)
    width = batch.index.shape[1]
    plain, padded = forward(bilm, batch), forward(bilm, replace(batch, index=np.pad(batch.index, ((0, 0), (0, 7)))))
    np.testing.assert_allclose(padded[:, :, :width].numpy(), plain.numpy(), atol=ATOL, rtol=0)
    assert not padded[:, :, width:].any(), "padding positions must be zeros"


def test_layer_zero_is_the_char_cnn_vector_twice(bilm, sentences):
    batch = CharBatch.from_sentences(sentences[:1])
    layers = forward(bilm, batch)
    with torch.inference_mode():
        vectors = bilm.char_cnn(torch.from_numpy(batch.unique))[torch.from_numpy(batch.index[0])]
    np.testing.assert_array_equal(layers[0, 0].numpy(), torch.cat([vectors, vectors], dim=-1).numpy())


def test_odd_tokens_give_finite_vectors(bilm):
    cases = [["猫", "が", "好き"], ["🐱", "👍🏽"], ["e\u0301", "n\u0303o"], [" ", "\t", "\u00a0"], [""], ["x"],
             ["a" * 200]]
    arrays = Embedder(bilm).embed_batch(cases)
    for tokens, array in zip(cases, arrays):
        assert array.shape == (bilm.n_output_layers, len(tokens), bilm.output_dim) and array.dtype == np.float32
        assert np.all(np.isfinite(array))
    assert not np.allclose(arrays[3][0, 0], arrays[3][0, 1])


def test_long_tokens_are_cut_after_48_bytes(bilm):
    assert np.array_equal(token_to_ids("x" * 60), token_to_ids("x" * 48))
    long, cut = Embedder(bilm).embed_batch([["the", "x" * 60, "."], ["the", "x" * 48, "."]])
    np.testing.assert_allclose(long, cut, atol=1e-6)


def test_literal_boundary_token_is_a_sentence_boundary(bilm):
    """'<S>' in the text gets the <S> id, as in the references, so its layer-0 vector is <S>'s."""
    layers = forward(bilm, CharBatch.from_sentences([["a", "<S>", "b"]]))
    np.testing.assert_array_equal(layers[0, 0, 2].numpy(), layers[0, 0, 0].numpy())
    assert not torch.equal(layers[0, 0, 1], layers[0, 0, 0])


def test_empty_sentence_and_empty_input(bilm):
    embedder = Embedder(bilm)
    assert embedder.embed_batch([]) == [] and list(embedder.embed_sentences([])) == []
    empty, one = embedder.embed_batch([[], ["word"]])
    assert empty.shape == (bilm.n_output_layers, 0, bilm.output_dim)
    assert one.shape == (bilm.n_output_layers, 1, bilm.output_dim)
    with pytest.raises(ElmoError, match="found a string"):
        embedder.embed_batch("not tokenised")
    with pytest.raises(ElmoError, match="token 1 is int"):
        embedder.embed_batch([["ok", 3]])


def test_token_vector_cache_skips_known_tokens_and_changes_nothing(bilm, sentences):
    bilm = copy.deepcopy(bilm)  # its weights change below
    cached, plain = Embedder(bilm, batch_size=4), Embedder(bilm, batch_size=4, cache_size=0)
    rows = []
    hook = bilm.char_cnn.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[0]))
    try:
        first = cached.embed_batch(sentences[:3])
        again = cached.embed_batch([sentences[1], sentences[0] + ["unseen-token"]])
    finally:
        hook.remove()
    assert rows[1] == 1, "only the unseen token goes through the char CNN"
    expected = plain.embed_batch(sentences[:3]) + plain.embed_batch([sentences[1], sentences[0] + ["unseen-token"]])
    for got, want in zip(first + again, expected):
        np.testing.assert_allclose(got, want, atol=1e-6)
    with torch.no_grad():
        next(bilm.char_cnn.parameters()).add_(0.5)
    stale = cached.embed_sentence(sentences[1])
    cached.clear_cache()
    np.testing.assert_allclose(cached.embed_sentence(sentences[1]), plain.embed_sentence(sentences[1]), atol=1e-6)
    assert not np.allclose(stale, plain.embed_sentence(sentences[1]), atol=1e-3), "a changed model needs clear_cache"
