import logging

import pytest

from spacy_elmo.errors import InputError
from spacy_elmo.training.corpus import (MAX_LINE_CHARS, SentenceStream, expand_paths, read_sentences, strip_gutenberg,
                                        tokenize_files, write_shards)


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
    with pytest.raises(InputError, match="empty.txt: the file holds only whitespace"):
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
