"""The cache against damage that keeps a file's size and mtime, and a failed first download (issue 25)."""
import os
import re

import pytest

from cli_helpers import cli
from spacy_elmo.errors import DownloadError
from spacy_elmo.hub import fetch_model

from .helpers import OPTIONS_PATH, WEIGHTS_PATH, one_error_line


def test_weights_changed_in_place_with_size_and_mtime_restored_are_hashed_and_refused(storage, tmp_path):
    """Bit rot, a restored backup or a careless tool: the bytes differ, size and mtime are the recorded ones."""
    weights = fetch_model("small", progress=False) / "weights.hdf5"
    before = weights.stat()
    with open(weights, "r+b") as f:
        f.seek(before.st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x10]))
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (weights.stat().st_size, weights.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    with pytest.raises(DownloadError, match=rf"{re.escape(str(weights))} no longer matches the sha256 recorded"):
        fetch_model("small", progress=False)
    source = tmp_path / "in.txt"
    source.write_text("a b\n")
    result = cli("embed", source, tmp_path / "out.hdf5", "--model", "small")
    assert result.exit_code == 1 and "no longer matches the sha256" in one_error_line(result.stderr)
    assert not (tmp_path / "out.hdf5").exists()


def test_a_file_replaced_by_another_with_the_same_size_and_mtime_is_hashed(storage, tmp_path, monkeypatch):
    """A new inode (the file replaced, e.g. by a copy) is hashed even when its stat looks the same otherwise."""
    import spacy_elmo.hub.cache as cache

    directory = fetch_model("small", progress=False)
    weights = directory / "weights.hdf5"
    info = weights.stat()
    copy = tmp_path / "copy"
    copy.write_bytes(weights.read_bytes())
    os.replace(copy, weights)
    os.utime(weights, ns=(info.st_atime_ns, info.st_mtime_ns))
    hashed = []
    real = cache.file_sha256
    monkeypatch.setattr(cache, "file_sha256", lambda path: hashed.append(path.name) or real(path))
    fetch_model("small", progress=False)
    assert hashed == ["weights.hdf5"]
    fetch_model("small", progress=False)
    assert hashed == ["weights.hdf5"], "a match is remembered: the next load costs a stat"


def test_a_failed_first_download_leaves_nothing_in_the_cache_root(tmp_path, monkeypatch, tiny_catalogue):
    monkeypatch.setenv("SPACY_ELMO_MIRROR", "http://127.0.0.1:9")
    (tmp_path / "cache").mkdir()
    result = cli("download", "small", "--dir", tmp_path / "cache")
    assert result.exit_code == 1 and "cannot reach" in one_error_line(result.stderr)
    assert list((tmp_path / "cache").iterdir()) == []


def test_the_offline_error_names_every_file_the_model_needs(tmp_path, monkeypatch, tiny_catalogue):
    monkeypatch.setenv("SPACY_ELMO_MIRROR", "http://127.0.0.1:9")
    line = one_error_line(cli("download", "small", "--dir", tmp_path / "cache").stderr)
    folder = tmp_path / "cache" / "small"
    for path, name in ((OPTIONS_PATH, "options.json"), (WEIGHTS_PATH, "weights.hdf5")):
        assert re.search(rf"{re.escape(path)} -> {re.escape(str(folder / name))}", line), line


def test_a_download_after_a_failed_one_locks_afresh_and_succeeds(storage, fixture_bytes, tmp_path):
    weights = storage.files.pop(WEIGHTS_PATH)
    with pytest.raises(DownloadError, match="HTTP error 404"):
        fetch_model("small", progress=False)
    assert not (tmp_path / "cache" / ".small.lock").exists()
    storage.files[WEIGHTS_PATH] = weights
    assert (fetch_model("small", progress=False) / "weights.hdf5").read_bytes() == fixture_bytes[1]
