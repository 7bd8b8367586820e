import logging

import pytest

from spacy_elmo.training.corpus import (MAX_LINE_CHARS, PackedBatches, SentenceStream, expand_paths, read_sentences,
                               strip_gutenberg, tokenize_files, write_shards)
from spacy_elmo.errors import InputError
from spacy_elmo.training.vocab import Vocab


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


def test_stream_state_resumes_exactly(tmp_path):
    for k in range(3):
        (tmp_path / f"s{k}.txt").write_text("\n".join(f"s{k} line {i}" for i in range(7)) + "\n", encoding="utf8")
    vocab = Vocab(["<S>", "</S>", "<UNK>"])
    a = PackedBatches(SentenceStream(expand_paths([tmp_path]), seed=5), vocab, 3, 4)
    for _ in range(5):
        next(a)
    state = a.state_dict()
    expected = [next(a) for _ in range(12)]
    b = PackedBatches(SentenceStream(expand_paths([tmp_path]), seed=99), vocab, 3, 4)
    b.load_state_dict(state)
    for (xi, yi), (xj, yj) in zip(expected, (next(b) for _ in range(12))):
        assert xi == xj and yi.tolist() == yj.tolist()


def test_shuffled_stream_covers_every_sentence_once_per_epoch(tmp_path):
    lines = [f"w{i}" for i in range(30)]
    paths = write_shards(lines, tmp_path, n_shards=4, seed=1)
    assert len(paths) == 4
    stream = SentenceStream(paths, seed=3)
    first_epoch = [next(stream)[0] for _ in range(30)]
    assert sorted(first_epoch) == sorted(lines) and first_epoch != lines


def test_eval_stream_is_one_pass_in_order(tmp_path):
    (tmp_path / "a.txt").write_text("a b\nc\n", encoding="utf8")
    assert list(SentenceStream([tmp_path / "a.txt"], shuffle=False, loop=False)) == [["a", "b"], ["c"]]


def test_corpus_smaller_than_one_batch_is_an_error(tmp_path, spec_vocab):
    shard = tmp_path / "tiny.txt"
    shard.write_text("the .\n", encoding="utf8")
    stream = SentenceStream([shard], min_epoch_tokens=64 * 20)
    with pytest.raises(InputError, match="tiny.txt.*one batch needs 1280"):
        next(PackedBatches(stream, spec_vocab, 64, 20))


def test_gutenberg_markers_are_stripped():
    text = "header\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\nbody line\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\nlicense"
    assert strip_gutenberg(text).strip() == "body line"
    old = "legal\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\nbody\nEnd of Project Gutenberg Etext X\n"
    assert strip_gutenberg(old).strip() == "body"
    assert strip_gutenberg("no markers here") == "no markers here"


def test_raw_text_is_tokenised_and_split_with_spacy(tmp_path):
    path = tmp_path / "raw.txt"
    path.write_text("Hello there, world. It's fine!\n\nA new\nparagraph here.", encoding="utf8")
    assert read_sentences(path, "raw", "en") == [
        ["Hello", "there", ",", "world", "."], ["It", "'s", "fine", "!"], ["A", "new", "paragraph", "here", "."]]
    path.write_text("Don't stop.\nOk\n", encoding="utf8")
    assert read_sentences(path, "lines", "en") == [["Do", "n't", "stop", "."], ["Ok"]]
    assert tokenize_files([path], "tokens") == {str(path): ["Don't stop.", "Ok"]}


def test_empty_binary_and_non_utf8_files_are_errors_naming_the_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n", encoding="utf8")
    with pytest.raises(InputError, match="empty.txt.*empty"):
        read_sentences(empty)
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputError, match="model.bin.*binary"):
        read_sentences(binary)
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\u00e9 au lait\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1.txt.*not valid UTF-8 \(bad byte at offset 3\)"):
        read_sentences(latin)


def test_overlong_line_is_skipped_with_a_warning(tmp_path, caplog):
    path = tmp_path / "long.txt"
    path.write_text("short line\n" + "x" * 1_000_000 + "\nlast one\n", encoding="utf8")
    with caplog.at_level(logging.WARNING):
        assert read_sentences(path) == [["short", "line"], ["last", "one"]]
    assert f"skipped 1 lines longer than {MAX_LINE_CHARS}" in caplog.text and "long.txt" in caplog.text


def test_missing_paths_are_errors(tmp_path):
    with pytest.raises(InputError, match="no text files found"):
        expand_paths([tmp_path / "nope*.txt"])
    with pytest.raises(InputError, match="unknown text format"):
        read_sentences(tmp_path / "x.txt", fmt="xml")
