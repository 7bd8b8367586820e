"""Bad input and faults of `prepare` and `vocab`.

Every case exits non-zero with one `Error:` line naming the file, option or value, never a traceback, and
loses or leaves nothing. Exit status 2 is click's for a bad flag value."""
import errno
import stat
from pathlib import Path

import pytest

from cli_helpers import bad_flag, cli, fails, snapshot, temp_files


@pytest.mark.parametrize("args,flag,shown", [
    (["--n-shards", "0"], "--n-shards", "0 is not an integer >= 1"),
    (["--n-process", "0"], "--n-process", "0 is not an integer >= 1"),
    (["--format", "pdf"], "--format", "'pdf' is not one of raw, lines, tokens"),
    (["--seed", "-1"], "--seed", "-1 is not an integer >= 0"),
])
def test_prepare_bad_flag_values(args, flag, shown, text, tmp_path):
    before = snapshot(tmp_path)
    bad_flag(cli("prepare", text, "-o", tmp_path / "shards", *args), flag, shown)
    assert snapshot(tmp_path) == before


def test_prepare_refuses_to_write_over_its_input(tmp_path):
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("The cat sat. The dog ran.\n")
    before = snapshot(tmp_path)
    fails(cli("prepare", texts, "-o", texts, "--overwrite"), r"--output .*texts would overwrite the input")
    assert snapshot(tmp_path) == before


def test_prepare_existing_output_needs_overwrite_and_is_replaced_whole(tmp_path):
    (tmp_path / "a.txt").write_text(" ".join(["The cat sat on the mat."] * 40) + "\n")
    assert cli("prepare", tmp_path / "a.txt", "-o", tmp_path / "shards", "--n-shards", "3").exit_code == 0
    before = snapshot(tmp_path)
    fails(cli("prepare", tmp_path / "a.txt", "-o", tmp_path / "shards", "--n-shards", "2"),
          r"the --output .*shards already exists; choose another --output or pass --overwrite")
    assert snapshot(tmp_path) == before
    assert cli("prepare", tmp_path / "a.txt", "-o", tmp_path / "shards", "--n-shards", "2", "--overwrite").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["shard-00000.txt", "shard-00001.txt"]
    assert temp_files(tmp_path) == []


def test_prepare_failure_midway_leaves_no_shards(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text(" ".join(["The cat sat on the mat."] * 40) + "\n")
    real, calls = Path.write_text, []

    def second_fails(self, *args, **kwargs):
        calls.append(self)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", second_fails)
    fails(cli("prepare", tmp_path / "a.txt", "-o", tmp_path / "shards", "--n-shards", "3"), r"the disk is full")
    assert not (tmp_path / "shards").exists() and temp_files(tmp_path) == []


@pytest.mark.parametrize("content,pattern", [
    (b"", r"the file is empty"),
    (b"abc\x00def", r"looks like a binary file"),
    (b"caf\xe9 au lait\n", r"not valid UTF-8 \(bad byte at offset 3\)"),
])
def test_prepare_bad_text(content, pattern, tmp_path):
    (tmp_path / "bad.txt").write_bytes(content)
    fails(cli("prepare", tmp_path / "bad.txt", "-o", tmp_path / "shards"), r"bad\.txt: " + pattern)
    assert not (tmp_path / "shards").exists()


def test_prepare_missing_input_and_unknown_language(text, tmp_path):
    fails(cli("prepare", tmp_path / "nope", "-o", tmp_path / "shards"), r"no text files found at .*nope")
    fails(cli("prepare", text, "-o", tmp_path / "shards", "--lang", "xx-not-a-language"), r"no spaCy language 'xx-not")
    assert not (tmp_path / "shards").exists()


def test_vocab_bad_flags_and_overwriting_an_input(text, tmp_path):
    bad_flag(cli("vocab", text, "-o", tmp_path / "v.txt", "--max-size", "3"), "--max-size", "3 is not an integer >= 4")
    bad_flag(cli("vocab", text, "-o", tmp_path / "v.txt", "--min-count", "0"), "--min-count", "0 is not")
    before = snapshot(tmp_path)
    fails(cli("vocab", text, "-o", text), r"would overwrite the input")
    assert snapshot(tmp_path) == before


def test_vocab_replaces_a_file_whole_keeping_its_mode(text, tmp_path):
    out = tmp_path / "vocab.txt"
    out.write_text("old\n")
    out.chmod(0o600)
    assert cli("vocab", text, "-o", out).exit_code == 0
    assert out.read_text().split("\n")[:3] == ["<S>", "</S>", "<UNK>"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and temp_files(tmp_path) == []


def test_an_empty_output_directory_is_used(tmp_path):
    (tmp_path / "a.txt").write_text(" ".join(["The cat sat on the mat."] * 10) + "\n")
    (tmp_path / "shards").mkdir()
    assert cli("prepare", tmp_path / "a.txt", "-o", tmp_path / "shards", "--n-shards", "2").exit_code == 0
    assert len(list((tmp_path / "shards").iterdir())) == 2
