"""The worked examples of elmo-spec §1."""
import numpy as np

from spacy_elmo import CharBatch, batch_to_ids, token_to_ids


def test_worked_examples():
    assert token_to_ids("Second").tolist() == [259, 84, 102, 100, 112, 111, 101, 260] + [261] * 42
    assert token_to_ids(".").tolist() == [259, 47, 260] + [261] * 47
    assert token_to_ids(chr(256) + "t").tolist() == [259, 197, 129, 117, 260] + [261] * 45


def test_boundaries():
    assert token_to_ids("<S>").tolist() == [259, 257, 260] + [261] * 47
    assert token_to_ids("</S>").tolist() == [259, 258, 260] + [261] * 47


def test_short_vectors_truncate_bytewise():
    assert (token_to_ids("th", 5) - 1).tolist() == [258, 116, 104, 259, 260]
    assert (token_to_ids("thhhhh", 5) - 1).tolist() == [258, 116, 104, 104, 259]
    longest = token_to_ids("x" * 48)
    assert longest[-1] == 260 and 261 not in longest.tolist()


def test_multibyte_truncation_cuts_inside_a_character():
    ids = token_to_ids("x" + "é" * 30)
    assert ids[0] == 259 and ids[49] == 260
    assert ids[48] == 0xC3 + 1


def test_char_batch_dedupes_and_pads():
    batch = CharBatch.from_sentences([["a", "b", "a"], ["b"]])
    assert batch.lengths.tolist() == [5, 3]
    assert batch.unique.shape == (4, 50)
    assert batch.index[0, 1] == batch.index[0, 3]
    assert batch.index.shape == (2, 5) and np.all(batch.index[1, 3:] == 0)
    dense = batch_to_ids([["a", "b", "a"], ["b"]])
    assert dense.shape == (2, 3, 50)
    assert np.all(dense[1, 1:] == 0)
    assert np.array_equal(dense[0, 0], batch.unique[batch.index[0, 1]])
