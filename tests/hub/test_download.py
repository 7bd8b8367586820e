"""Downloads by name from the test server (reached through SPACY_ELMO_MIRROR, with the `small` entry
resized to the fixture model): checking, caching, resuming, corrupt and failed downloads, concurrent
downloads, and each error through the Python API."""
import dataclasses
import hashlib
import os
import re
import subprocess
import threading
import time
from urllib.parse import urlsplit

import pytest

from spacy_elmo import Embedder, load_lstm_bilm
from spacy_elmo.errors import DownloadError, UnknownModelError, WeightsError
from spacy_elmo.hub import MODELS, cache_root, fetch_model, resolve_model_files
from spacy_elmo.hub.catalogue import BUNDLED_DIR
from spacy_elmo.hub.cache import mirrored
from spacy_elmo.hub.catalogue import model_names

from conftest import ROOT

from .helpers import SMALL, OPTIONS_PATH, WEIGHTS_PATH, TINY_CLI, cache_listing


def test_download_checks_and_caches_then_serves_from_cache_without_a_request(storage, fixture_bytes, tmp_path):
    directory = fetch_model("small", progress=False)
    assert directory == tmp_path / "cache" / "small"
    options, weights = directory / "options.json", directory / "weights.hdf5"
    assert (options.read_bytes(), weights.read_bytes()) == fixture_bytes
    assert cache_listing(tmp_path) == ["manifest.json", "options.json", "weights.hdf5"]
    assert load_lstm_bilm(options, weights).options.output_dim == 32
    assert storage.requests_for(WEIGHTS_PATH) == [None]
    n_requests = len(storage.log)
    assert resolve_model_files("small") == (options, weights)
    assert Embedder.from_pretrained("small").output_dim == 32
    assert len(storage.log) == n_requests


def test_a_dropped_connection_is_resumed_with_a_range_request(storage, fixture_bytes):
    storage.cut_after[WEIGHTS_PATH] = 200_000
    weights = fetch_model("small", progress=False) / "weights.hdf5"
    first, resumed = storage.requests_for(WEIGHTS_PATH)
    assert first is None and 0 < int(re.fullmatch(r"bytes=(\d+)-", resumed).group(1)) <= 200_000
    assert weights.read_bytes() == fixture_bytes[1]


def test_a_partial_file_left_by_an_earlier_run_is_resumed(storage, fixture_bytes, tmp_path):
    directory = tmp_path / "cache" / "small"
    directory.mkdir(parents=True)
    (directory / "weights.hdf5.part").write_bytes(fixture_bytes[1][:123_456])
    weights = fetch_model("small", progress=False) / "weights.hdf5"
    assert storage.requests_for(WEIGHTS_PATH) == ["bytes=123456-"]
    assert weights.read_bytes() == fixture_bytes[1]
    assert "weights.hdf5.part" not in cache_listing(tmp_path)


@pytest.mark.parametrize("leftover", ["complete", "longer than the file"])
def test_a_part_file_as_long_as_the_file_or_longer(leftover, storage, fixture_bytes, tmp_path):
    """The server answers 416: a complete .part is taken as it is, a longer one is discarded."""
    directory = tmp_path / "cache" / "small"
    directory.mkdir(parents=True)
    extra = b"" if leftover == "complete" else b"junk"
    (directory / "weights.hdf5.part").write_bytes(fixture_bytes[1] + extra)
    weights = fetch_model("small", progress=False) / "weights.hdf5"
    n = len(fixture_bytes[1]) + len(extra)
    assert storage.requests_for(WEIGHTS_PATH) == [f"bytes={n}-"] + ([None] if extra else [])
    assert weights.read_bytes() == fixture_bytes[1]


def test_a_corrupt_download_is_detected_removed_and_never_cached(storage, fixture_bytes, tmp_path):
    """Only the file that failed is removed: the options passed their check and are not fetched again."""
    storage.files[WEIGHTS_PATH] = bytes(len(fixture_bytes[1]))
    with pytest.raises(DownloadError, match="weights.hdf5 of 'small' failed the weights check and was removed.*HDF5"):
        fetch_model("small", progress=False)
    assert cache_listing(tmp_path) == ["options.json"]
    storage.files[WEIGHTS_PATH] = fixture_bytes[1]
    assert (fetch_model("small", progress=False) / "weights.hdf5").read_bytes() == fixture_bytes[1]
    assert storage.requests_for(OPTIONS_PATH) == [None]


def test_a_flipped_byte_is_caught_by_a_known_sha256(storage, fixture_bytes, tmp_path, monkeypatch):
    """Float data can be corrupted without breaking the HDF5 layout; only a known hash catches that."""
    digest = hashlib.sha256(fixture_bytes[1]).hexdigest()
    options, weights = SMALL.remotes
    known = dataclasses.replace(MODELS["small"], remotes=(options, dataclasses.replace(weights, sha256=digest)))
    monkeypatch.setitem(MODELS, "small", known)
    damaged = bytearray(fixture_bytes[1])
    damaged[len(damaged) // 2] ^= 0x01
    storage.files[WEIGHTS_PATH] = bytes(damaged)
    with pytest.raises(DownloadError, match="corrupt.*it was removed"):
        fetch_model("small", progress=False)
    assert "weights.hdf5" not in cache_listing(tmp_path) and "manifest.json" not in cache_listing(tmp_path)
    storage.files[WEIGHTS_PATH] = fixture_bytes[1]
    assert (fetch_model("small", progress=False) / "weights.hdf5").read_bytes() == fixture_bytes[1]


def test_a_known_size_that_the_server_contradicts_is_an_error(storage, monkeypatch):
    options, weights = SMALL.remotes
    wrong = dataclasses.replace(MODELS["small"], remotes=(options, dataclasses.replace(weights, size=1000)))
    monkeypatch.setitem(MODELS, "small", wrong)
    with pytest.raises(DownloadError, match=r"has 450896 bytes, the catalogue expects 1000"):
        fetch_model("small", progress=False)


def test_http_error_names_status_and_address(storage, tmp_path):
    del storage.files[WEIGHTS_PATH]
    with pytest.raises(DownloadError, match=rf"HTTP error 404 Not Found for http://127\.0\.0\.1:\d+{re.escape(WEIGHTS_PATH)}"):
        fetch_model("small", progress=False)
    assert "manifest.json" not in cache_listing(tmp_path)


def test_no_network_says_which_address_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("SPACY_ELMO_MIRROR", "http://127.0.0.1:9")
    with pytest.raises(DownloadError) as err:
        fetch_model("small", cache_dir=tmp_path, progress=False)
    message = str(err.value)
    assert f"cannot reach http://127.0.0.1:9{OPTIONS_PATH} ([Errno 111] Connection refused) through the mirror " \
           "SPACY_ELMO_MIRROR=http://127.0.0.1:9: check that it is up" in message
    assert "unset it" in message and "Set SPACY_ELMO_MIRROR" not in message and "Max retries" not in message
    assert str(tmp_path / "small" / "options.json") in message


def test_no_network_without_a_mirror_suggests_one(tmp_path, monkeypatch):
    import requests

    def unreachable(*args, **kwargs):
        raise requests.ConnectionError("[Errno 101] Network is unreachable")

    monkeypatch.delenv("SPACY_ELMO_MIRROR", raising=False)
    monkeypatch.setattr(requests.Session, "get", unreachable)
    with pytest.raises(DownloadError, match=re.escape(f"cannot reach {SMALL.remotes[0].url} ([Errno 101] Network is "
                                                      "unreachable); offline or behind a proxy? Set SPACY_ELMO_MIRROR")):
        fetch_model("small", cache_dir=tmp_path, progress=False)


def test_files_put_in_the_cache_by_hand_are_checked_and_used(fixture_dir, tmp_path, monkeypatch, tiny_catalogue):
    monkeypatch.setenv("SPACY_ELMO_MIRROR", "http://127.0.0.1:9")
    directory = tmp_path / "small"
    directory.mkdir()
    (directory / "options.json").write_bytes((fixture_dir / "options.json").read_bytes())
    (directory / "weights.hdf5").write_bytes((fixture_dir / "lm_weights.hdf5").read_bytes())
    assert fetch_model("small", cache_dir=tmp_path, progress=False) == directory
    assert (directory / "manifest.json").is_file()


def test_unknown_name_lists_the_names():
    with pytest.raises(UnknownModelError, match="'smal'.*default, small, medium, original, original-5.5B, pubmed"):
        resolve_model_files("smal")
    with pytest.raises(UnknownModelError, match="'default' is the bundled model, nothing to download"):
        fetch_model("default")


def test_too_little_disk_space_is_refused_before_writing(storage, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 1000))
    with pytest.raises(DownloadError, match=r"not enough disk space for .*weights\.hdf5 \(0\.5 MB more needed"):
        fetch_model("small", progress=False)
    assert cache_listing(tmp_path) == ["options.json"]


def test_progress_bar(storage, capsys):
    fetch_model("small")
    err = capsys.readouterr().err
    assert "weights.hdf5" in err and "100%" in err and "440k/440k" in err


def test_unwritable_cache_directory(storage, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(DownloadError, match=f"cannot write to the model cache at {re.escape(str(blocker))}"):
        fetch_model("small", cache_dir=blocker / "cache", progress=False)


def test_resolve_model_files_combinations(fixture_dir):
    options, weights = fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5"
    assert resolve_model_files(options_file=options, weight_file=weights) == (options, weights)
    bundled = (BUNDLED_DIR / "options.json", BUNDLED_DIR / "weights.hdf5")
    assert resolve_model_files() == bundled == resolve_model_files("default")
    with pytest.raises(WeightsError, match="model name 'small' and also options/weight files"):
        resolve_model_files("small", options_file=options, weight_file=weights)
    with pytest.raises(WeightsError, match="got weight_file=.* but no options_file"):
        resolve_model_files(weight_file=weights)


def test_cache_location_and_mirror(tmp_path, monkeypatch):
    monkeypatch.delenv("SPACY_ELMO_CACHE", raising=False)
    assert "spacy-elmo" in cache_root().parts
    monkeypatch.setenv("SPACY_ELMO_CACHE", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "flag") == tmp_path / "flag"
    url = SMALL.remotes[1].url
    monkeypatch.delenv("SPACY_ELMO_MIRROR", raising=False)
    assert mirrored(url) == url
    monkeypatch.setenv("SPACY_ELMO_MIRROR", "https://mirror.example.org/elmo/")
    assert mirrored(url) == "https://mirror.example.org/elmo" + urlsplit(url).path
    monkeypatch.setenv("SPACY_ELMO_MIRROR", "mirror.example.org")
    with pytest.raises(DownloadError, match="SPACY_ELMO_MIRROR='mirror.example.org' is not an address"):
        mirrored(url)


def test_catalogue_entries_are_complete():
    assert {"default", "small", "medium", "original", "original-5.5B", "pubmed", "portuguese"} <= set(model_names())
    for model in MODELS.values():
        for remote in model.remotes:
            assert remote.url.startswith("https://") and remote.sha256 is None and remote.size is None
        assert model.training_data and model.licence and model.sources
    assert [MODELS[n].output_dim for n in ("small", "medium", "original", "original-5.5B")] == [256, 512, 1024, 1024]


@pytest.mark.slow
def test_two_processes_downloading_one_model_download_it_once(storage, fixture_bytes, tmp_path):
    """The second process waits on the first one's lock (its stderr says so), then finds the model cached."""
    gate = storage.gates[WEIGHTS_PATH] = threading.Event()
    command = [*TINY_CLI, "download", "small", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    deadline = time.time() + 120
    while not storage.requests_for(WEIGHTS_PATH) and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    assert storage.requests_for(WEIGHTS_PATH) == [None]
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    waiting = threading.Event()
    lines = []

    def read_stderr():
        for line in second.stderr:
            lines.append(line)
            if "waiting for another process" in line:
                waiting.set()

    reader = threading.Thread(target=read_stderr)
    reader.start()
    assert waiting.wait(120), lines
    gate.set()
    out_first, err_first = first.communicate(timeout=120)
    out_second = second.stdout.read()
    assert second.wait(120) == 0 and first.returncode == 0, (err_first, lines)
    reader.join()
    assert out_first == out_second and str(tmp_path / "cache" / "small") in out_first
    assert storage.requests_for(WEIGHTS_PATH) == [None] and storage.requests_for(OPTIONS_PATH) == [None]
    assert (tmp_path / "cache" / "small" / "weights.hdf5").read_bytes() == fixture_bytes[1]
