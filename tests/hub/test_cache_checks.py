"""Every cached resource is checked before it is used, and downloads finish on a bad line: a mirror serving
another model, flipped bits, a verified cache costing one stat, Ctrl-C, and `embed` never writing into the
cache."""
import dataclasses
import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from cli_helpers import cli, snapshot
from spacy_elmo.errors import DownloadError
from spacy_elmo.hub import MODELS, fetch_model

from conftest import ROOT

from .helpers import SMALL, OPTIONS_PATH, WEIGHTS_PATH, TINY_CLI, cache_listing, one_error_line


def test_a_mirror_serving_another_model_is_refused_before_the_weights(storage, tmp_path, monkeypatch):
    """The real catalogue's small is 2x1024_128 with 1 highway layer; the server offers the 64/16/2 fixture."""
    monkeypatch.setitem(MODELS, "small", SMALL)
    with pytest.raises(DownloadError, match=r"options\.json of 'small' failed the options check and was removed .*"
                       r"not the published 'small' model: LSTM size 64 \(published: 1024\), projection size 16 "
                       r"\(published: 128\), highway layers 2 \(published: 1\); check the mirror SPACY_ELMO_MIRROR="):
        fetch_model("small", progress=False)
    assert storage.requests_for(WEIGHTS_PATH) == [] and cache_listing(tmp_path) == []
    rows = {line.split()[0]: line for line in cli("models").stdout.splitlines()[1:]}
    assert re.search(r"^small\s+256\s+~54 MB\s+no\s", rows["small"])
    monkeypatch.setitem(MODELS, "transformer", dataclasses.replace(MODELS["transformer"], projection_dim=512,
                                                                   n_highway=2))
    with pytest.raises(DownloadError, match=r"not the published 'transformer' model: projection size 16 "
                                            r"\(published: 512\), highway layers 1 \(published: 2\)"):
        fetch_model("transformer", progress=False)
    assert cache_listing(tmp_path, "transformer") == []


def test_a_cached_file_with_flipped_bits_is_refused_when_loaded(storage, tmp_path):
    weights = fetch_model("small", progress=False) / "weights.hdf5"
    damaged = bytearray(weights.read_bytes())
    damaged[len(damaged) // 2] ^= 0x10
    weights.write_bytes(bytes(damaged))
    before = snapshot(tmp_path / "cache")
    with pytest.raises(DownloadError, match=rf"{re.escape(str(weights))} no longer matches the sha256 recorded in "
                                            r".*manifest\.json .*delete it and run `python -m spacy_elmo download small`"):
        fetch_model("small", progress=False)
    source = tmp_path / "in.txt"
    source.write_text("a b\n")
    result = cli("embed", source, tmp_path / "out.hdf5", "--model", "small")
    assert result.exit_code == 1 and "no longer matches the sha256" in one_error_line(result.stderr)
    assert snapshot(tmp_path / "cache") == before and not (tmp_path / "out.hdf5").exists()


def test_a_verified_cache_costs_a_stat(storage, tmp_path, monkeypatch):
    """Hashing happens once per change of (size, mtime): at download, and after the file was touched."""
    import spacy_elmo.hub.cache as cache

    hashed = []
    real = cache.file_sha256
    monkeypatch.setattr(cache, "file_sha256", lambda path: hashed.append(path.name) or real(path))
    directory = fetch_model("small", progress=False)
    hashed.clear()
    assert fetch_model("small", progress=False) == directory and hashed == []
    os.utime(directory / "weights.hdf5", ns=(10**18, 10**18))
    fetch_model("small", progress=False)
    assert hashed == ["weights.hdf5"]
    assert json.loads((directory / "manifest.json").read_text())["files"]["weights.hdf5"]["mtime_ns"] == 10**18
    fetch_model("small", progress=False)
    assert hashed == ["weights.hdf5"]


def test_a_wrong_options_file_never_costs_the_valid_weights(storage, fixture_bytes, tmp_path, monkeypatch):
    directory = tmp_path / "cache" / "small"
    directory.mkdir(parents=True)
    options = json.loads(fixture_bytes[0])
    options["lstm"]["projection_dim"] = 32
    (directory / "options.json").write_text(json.dumps(options))
    (directory / "weights.hdf5").write_bytes(fixture_bytes[1])
    result = cli("download", "small", "--no-progress")
    assert result.exit_code == 1
    assert re.search(r"options\.json of 'small' failed the options check and was removed .*projection size 32 "
                     r"\(published: 16\)", one_error_line(result.stderr))
    assert cache_listing(tmp_path) == ["weights.hdf5"] and (directory / "weights.hdf5").read_bytes() == fixture_bytes[1]
    assert cli("download", "small", "--no-progress").exit_code == 0
    assert storage.requests_for(OPTIONS_PATH) == [None] and storage.requests_for(WEIGHTS_PATH) == []


def test_a_line_that_drops_every_50_kb_finishes_on_a_rerun(storage, fixture_bytes, tmp_path):
    """Every byte received is kept: 6 attempts per run keep 300,000 bytes, the rerun fetches the rest."""
    storage.drop_every[WEIGHTS_PATH] = 50_000
    with pytest.raises(DownloadError, match=r"the connection dropped 6 times, the last after 300000 of 450896 "
                                            r"bytes; run the download again to resume"):
        fetch_model("small", progress=False)
    part = tmp_path / "cache" / "small" / "weights.hdf5.part"
    assert part.stat().st_size == 300_000 and part.read_bytes() == fixture_bytes[1][:300_000]
    weights = fetch_model("small", progress=False) / "weights.hdf5"
    assert weights.read_bytes() == fixture_bytes[1]
    assert storage.requests_for(WEIGHTS_PATH)[6:] == ["bytes=300000-", "bytes=350000-", "bytes=400000-",
                                                      "bytes=450000-"]


def test_a_failed_offline_download_leaves_no_empty_folder(tmp_path, monkeypatch, tiny_catalogue):
    monkeypatch.setenv("SPACY_ELMO_MIRROR", "http://127.0.0.1:9")
    result = cli("download", "small", "--dir", tmp_path / "cache")
    assert result.exit_code == 1 and "cannot reach" in one_error_line(result.stderr)
    assert not (tmp_path / "cache" / "small").exists()


def test_ctrl_c_keeps_the_partial_download_and_says_so(storage, fixture_bytes, tmp_path):
    gate = threading.Event()
    storage.stall_after[WEIGHTS_PATH] = (100_000, gate)
    process = subprocess.Popen([*TINY_CLI, "download", "small", "--no-progress"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    part = tmp_path / "cache" / "small" / "weights.hdf5.part"
    deadline = time.time() + 120
    while not (part.is_file() and part.stat().st_size == 100_000) and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    gate.set()
    assert process.returncode == 130, stderr
    assert one_error_line(stderr) == (f"Error: interrupted (SIGINT); the partial download {part} (100,000 bytes) is "
                                      "kept: run the same command again to resume")
    assert part.read_bytes() == fixture_bytes[1][:100_000]
    del storage.stall_after[WEIGHTS_PATH]
    assert (fetch_model("small", progress=False) / "weights.hdf5").read_bytes() == fixture_bytes[1]
    assert storage.requests_for(WEIGHTS_PATH)[-1] == "bytes=100000-"


def test_embed_never_writes_into_the_model_cache(storage, tmp_path):
    directory = fetch_model("small", progress=False)
    source = tmp_path / "in.txt"
    source.write_text("a b\n")
    before = snapshot(tmp_path / "cache")
    for output in (directory / "weights.hdf5", directory / "vectors.hdf5"):
        result = cli("embed", source, output, "--model", "small", "--overwrite")
        assert result.exit_code == 1
        assert re.search(r"would overwrite the model folder .*cache/small", one_error_line(result.stderr))
    assert snapshot(tmp_path / "cache") == before
    n_requests = len(storage.log)
    assert cli("embed", source, tmp_path / "out.hdf5", "--model", "small").exit_code == 0
    assert len(storage.log) == n_requests
