"""The batches of each biLM kind: bilm-tf's packed windows (LSTM), whole sentences packed into rows
(transformer), and what both owe the loop: char ids of the right tokens, and an exactly resumable position."""
from pathlib import Path

import numpy as np
import pytest
import torch

from spacy_elmo.bilm.char_ids import BOS, EOS, CharBatch, token_to_ids
from spacy_elmo.bilm.batching import batch_layers
from spacy_elmo.errors import InputError
from spacy_elmo.training.corpus import SentenceStream, expand_paths
from spacy_elmo.training.kinds import KINDS
from spacy_elmo.training.lstm_lm import PackedBatches
from spacy_elmo.training.transformer_lm import NO_TARGET, SentenceWindows, TransformerLanguageModel, encode_windows
from spacy_elmo.training.vocab import Vocab

from .helpers import make_corpus, tiny_config

SENTENCES = [["the", "cat", "sat", "on", "the", "mat", "."], ["she", "saw", "a", "tree"], ["he", "sat", "."]]


@pytest.fixture
def spec_vocab():
    return Vocab(["<S>", "</S>", "<UNK>", "the", "."])


def _ids(vocab, rows):
    return [list(vocab.ids(row)) for row in rows]


def test_packed_batches_reproduce_the_spec_worked_example(tmp_path, spec_vocab):
    """elmo-spec §8.3: sentences 'the unknown .', 'th .', 'the'; batch 2, window 3; shard reloaded."""
    shard = tmp_path / "data.txt"
    shard.write_text("the unknown .\nth .\nthe\n", encoding="utf8")
    stream = SentenceStream([shard], shuffle=False, loop=True)
    batches = PackedBatches(stream, spec_vocab, batch_size=2, unroll_steps=3)
    inputs, targets = next(batches)
    assert _ids(spec_vocab, inputs) == [[0, 3, 2], [0, 2, 4]]
    assert targets.tolist() == [[3, 2, 4], [2, 4, 1]]
    inputs, targets = next(batches)
    assert _ids(spec_vocab, inputs) == [[4, 0, 3], [0, 3, 2]]
    assert targets.tolist() == [[1, 3, 1], [3, 2, 4]]


def test_backward_stream_reads_reversed_sentences(tmp_path, spec_vocab):
    shard = tmp_path / "data.txt"
    shard.write_text("the unknown .\n", encoding="utf8")
    batches = PackedBatches(SentenceStream([shard], shuffle=False), spec_vocab, 1, 4, reverse=True)
    inputs, targets = next(batches)
    assert inputs == [["</S>", ".", "unknown", "the"]]
    assert targets.tolist() == [[4, 2, 3, 0]]


def test_corpus_smaller_than_one_batch_is_an_error(tmp_path, spec_vocab):
    shard = tmp_path / "tiny.txt"
    shard.write_text("the .\n", encoding="utf8")
    stream = SentenceStream([shard], min_epoch_tokens=64 * 20)
    with pytest.raises(InputError, match="tiny.txt.*one batch needs 1280"):
        next(PackedBatches(stream, spec_vocab, 64, 20))


def windows_of(tmp_path: Path, sentences, batch_size: int, window: int) -> SentenceWindows:
    (tmp_path / "text.txt").write_text("\n".join(" ".join(s) for s in sentences) + "\n", encoding="utf8")
    vocab = Vocab(["<S>", "</S>", "<UNK>"] + sorted({t for s in sentences for t in s}))
    stream = SentenceStream([tmp_path / "text.txt"], shuffle=False, loop=False)
    return SentenceWindows(stream, vocab, batch_size, window)


def test_windows_hold_whole_sentences_from_position_0_with_next_and_previous_targets(tmp_path):
    windows = windows_of(tmp_path, SENTENCES, batch_size=2, window=12)
    vocab = windows.vocab
    batch = next(windows)
    # row 0: sentence 1 (9 tokens with boundaries); sentence 2 (6) does not fit in the 3 left: next row
    assert batch.rows[0] == [BOS, *SENTENCES[0], EOS]
    assert batch.rows[1] == [BOS, *SENTENCES[1], EOS, BOS, *SENTENCES[2], EOS]
    assert batch.segments[1].tolist() == [1] * 6 + [2] * 5 + [0]
    assert batch.positions[1].tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 0]
    second = [BOS, *SENTENCES[1], EOS]
    assert batch.targets[0, 1, :6].tolist() == [*vocab.ids(second[1:]), NO_TARGET]
    assert batch.targets[1, 1, :6].tolist() == [NO_TARGET, *vocab.ids(second[:-1])]
    assert (batch.targets[:, 0, 9:] == NO_TARGET).all() and batch.n_tokens == 9 + 11
    with pytest.raises(StopIteration):
        next(windows)


def test_a_sentence_longer_than_a_row_is_cut_with_the_whole_sentence_targets(tmp_path):
    long = [f"w{i}" for i in range(10)]
    windows = windows_of(tmp_path, [long], batch_size=2, window=5)
    batch = next(windows)
    tokens = [BOS, *long, EOS]
    ids = windows.vocab.ids(tokens)
    assert batch.rows == [tokens[:5], tokens[5:10]]
    assert batch.positions.tolist() == [[0, 1, 2, 3, 4]] * 2
    assert batch.targets[0, 1].tolist() == ids[6:11].tolist()
    assert batch.targets[1, 1].tolist() == ids[4:9].tolist()
    last = next(windows)
    assert last.rows == [tokens[10:], []] and last.targets[0, 0, 1] == NO_TARGET and last.targets[1, 0, 1] == ids[10]


def test_packed_sentences_are_computed_as_if_alone(tmp_path):
    """The masks keep a row's sentences apart: every top-layer vector equals the embedder's for that
    sentence alone, so training sees exactly what embedding will."""
    torch.manual_seed(0)
    config = tiny_config(tmp_path, "transformer")
    model = TransformerLanguageModel(config.bilm_options(), n_classes=20, dropout=0.0).eval()
    windows = next(windows_of(tmp_path, SENTENCES, batch_size=2, window=12))
    char_ids, index, positions, segments, _ = encode_windows(windows, 50)
    with torch.no_grad():
        forward, backward = model.bilm.directions(model.bilm.char_cnn(char_ids)[index], positions, segments)
        alone = [batch_layers(model.bilm, CharBatch.from_sentences([s]))[-1, 0] for s in SENTENCES]
    packed = torch.cat([forward[-1], backward[-1]], dim=-1)
    for (row, start), sentence, expected in zip([(0, 0), (1, 0), (1, 6)], SENTENCES, alone):
        n = len(sentence) + 2
        torch.testing.assert_close(packed[row, start : start + n], expected[:n], rtol=0, atol=1e-5)


def test_rows_taken_as_they_are_keep_their_own_boundaries():
    rows = [[BOS, "a", "b"], ["b", EOS]]
    batch = CharBatch.from_sentences(rows, 50, boundaries=False)
    assert batch.lengths.tolist() == [3, 2] and batch.index.shape == (2, 3)
    assert [[batch.tokens[i] for i in row[:n]] for row, n in zip(batch.index, batch.lengths)] == rows


def spelled(char_ids: torch.Tensor, index: torch.Tensor, vocab: Vocab) -> np.ndarray:
    """The token whose char ids each position of `index` points at."""
    tokens = {tuple(token_to_ids(token, 50)): token for token in vocab.tokens}
    rows = [tokens[tuple(ids)] for ids in char_ids.numpy()]
    return np.array(rows, dtype=object)[index.numpy()]


def test_lstm_batches_point_each_position_at_its_tokens_char_ids(tmp_path):
    """Each direction's rows are running text: the target at t is the token read at t + 1, but where it
    is the sentence end (</S> forward, <S> backward), which is never read: a new sentence starts."""
    root = make_corpus(tmp_path, n_sentences=40)
    vocab = Vocab.from_file(root / "vocab.txt")
    batches = KINDS["lstm"].impl.batches(tiny_config(root), vocab, expand_paths([root / "train"]), 0, True, 3)
    (char_ids, index, targets), _, _ = next(batches)
    words = spelled(char_ids, index, vocab)
    assert words.shape == (2, 3, 10) and words[0, 0, 0] == BOS and words[1, 0, 0] == EOS
    ids = np.vectorize(lambda word: vocab.index[word])(words)
    predicted, read = targets[:, :, :-1].numpy(), ids[:, :, 1:]
    ends = predicted == np.array([vocab.eos, vocab.bos])[:, None, None]
    assert ends.any() and (predicted[~ends] == read[~ends]).all()
    assert (read[0][ends[0]] == vocab.bos).all() and (read[1][ends[1]] == vocab.eos).all()


def test_transformer_batches_point_each_position_at_its_tokens_char_ids(tmp_path):
    windows = next(windows_of(tmp_path, SENTENCES, batch_size=2, window=12))
    char_ids, index, *_ = encode_windows(windows, 50)
    assert spelled(char_ids, index, windows_of(tmp_path, SENTENCES, 2, 12).vocab).tolist() == [
        [BOS, *SENTENCES[0], EOS, BOS, BOS, BOS], [BOS, *SENTENCES[1], EOS, BOS, *SENTENCES[2], EOS, BOS]]


@pytest.mark.parametrize("bilm", sorted(KINDS))
def test_a_saved_position_resumes_the_same_batches(tmp_path, bilm):
    root = make_corpus(tmp_path, n_sentences=60, n_shards=3)
    config = tiny_config(root, bilm)
    vocab, paths = Vocab.from_file(root / "vocab.txt"), expand_paths([root / "train"])
    a = KINDS[bilm].impl.batches(config, vocab, paths, 5, True, 3)
    for _ in range(5):
        next(a)
    state = a.state_dict()
    expected = [next(a) for _ in range(12)]
    b = KINDS[bilm].impl.batches(config, vocab, paths, 99, True, 3)
    b.load_state_dict(state)
    for (inputs, tokens, counts), (again, tokens_again, counts_again) in zip(expected, (next(b) for _ in range(12))):
        assert tokens == tokens_again and torch.equal(counts, counts_again)
        assert all(torch.equal(x, y) for x, y in zip(inputs, again))
