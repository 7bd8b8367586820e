import pytest

from spacy_elmo.errors import InputError
from spacy_elmo.training.vocab import SPECIALS, Vocab


def test_build_is_frequency_sorted_with_specials_first():
    vocab = Vocab.build([["b", "a", "b"], ["c", "b", "a"]], max_size=5)
    assert vocab.tokens == ["<S>", "</S>", "<UNK>", "b", "a"]
    assert list(vocab.ids(["a", "c", "<S>"])) == [4, vocab.unk, 0]


def test_min_count_and_literal_specials_in_text():
    vocab = Vocab.build([["x", "x", "<UNK>", "y"]], max_size=100, min_count=2)
    assert vocab.tokens == list(SPECIALS) + ["x"]


def test_file_round_trip_skips_bilm_tf_marker(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("<S>\n</S>\n<UNK>\n!!!MAXTERMID\nthe\n\n", encoding="utf8")
    vocab = Vocab.from_file(path)
    assert vocab.tokens == ["<S>", "</S>", "<UNK>", "the"]
    vocab.to_file(tmp_path / "out.txt")
    assert Vocab.from_file(tmp_path / "out.txt") == vocab


def test_vocab_missing_boundary_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("</S>\n<UNK>\nthe\n", encoding="utf8")
    with pytest.raises(InputError, match=r"bad\.txt.*missing <S>"):
        Vocab.from_file(path)


def test_duplicate_and_non_utf8_vocab(tmp_path):
    dup = tmp_path / "dup.txt"
    dup.write_text("<S>\n</S>\n<UNK>\nthe\nthe\n", encoding="utf8")
    with pytest.raises(InputError, match="appears twice"):
        Vocab.from_file(dup)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"<S>\n</S>\n<UNK>\n\xff\xfe\n")
    with pytest.raises(InputError, match="bin.txt.*UTF-8"):
        Vocab.from_file(binary)
