"""Published models by name: downloads from a real HTTP server on 127.0.0.1 (reached through
SPACY_ELMO_MIRROR, serving the fixture models under the `small` and `transformer` entries' paths, with
those entries resized to the fixtures by tiny_catalogue), the cache, resuming, corrupt and failed
downloads, concurrent downloads, and every error through the API and the CLI."""
import dataclasses
import hashlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import torch
from typer.testing import CliRunner

from spacy_elmo import Embedder, load_bilm
from spacy_elmo.bilm.loading import load_any_bilm
from spacy_elmo.cli.app import app
from spacy_elmo.errors import DownloadError, UnknownModelError, WeightsError
from spacy_elmo.hub import MODELS, cache_root, default_model_files, fetch_model, resolve_model_files
from spacy_elmo.hub.cache import mirrored
from spacy_elmo.hub.catalogue import model_names

from conftest import ROOT, SHARED
from tiny_catalogue import resized

SMALL = MODELS["small"]
OPTIONS_PATH, WEIGHTS_PATH = (urlsplit(f.url).path for f in (SMALL.options, SMALL.weights))
ARCHIVE_PATH = urlsplit(MODELS["transformer"].archive.url).path
TRANSFORMER = SHARED / "fixtures" / "transformer-elmo"
TINY_CLI = [sys.executable, str(ROOT / "tests" / "tiny_catalogue.py")]


class Storage:
    """What the test server serves, and a log of what it was asked for."""

    def __init__(self, files):
        self.files = dict(files)
        self.log = []
        self.cut_after = {}
        self.drop_every = {}
        self.stall_after = {}
        self.gates = {}
        self.lock = threading.Lock()

    def requests_for(self, path):
        with self.lock:
            return [rng for p, rng in self.log if p == path]


def handler_for(storage):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            with storage.lock:
                storage.log.append((self.path, self.headers.get("Range")))
            if self.path in storage.gates:
                storage.gates[self.path].wait(60)
            data = storage.files.get(self.path)
            if data is None:
                self.send_error(404, "Not Found")
                return
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            start = int(match.group(1)) if match else 0
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            if match:
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            body = data[start:]
            cut = storage.cut_after.pop(self.path, storage.drop_every.get(self.path))
            if self.path in storage.stall_after:
                stall, resume = storage.stall_after[self.path]
                self.wfile.write(body[:stall])
                self.wfile.flush()
                resume.wait(60)
                body = body[stall:]
            self.wfile.write(body if cut is None else body[:cut])

    return Handler


@pytest.fixture
def fixture_bytes(fixture_dir):
    return (fixture_dir / "options.json").read_bytes(), (fixture_dir / "lm_weights.hdf5").read_bytes()


@pytest.fixture
def archive_bytes():
    return (TRANSFORMER / "model.tar.gz").read_bytes()


@pytest.fixture
def tiny_catalogue(monkeypatch):
    for name, entry in resized("small", "transformer").items():
        monkeypatch.setitem(MODELS, name, entry)


@pytest.fixture
def storage(fixture_bytes, archive_bytes, tmp_path, monkeypatch, tiny_catalogue):
    """A server holding the fixture models at the `small` and `transformer` paths; mirror and cache point
    at it and tmp_path."""
    store = Storage({OPTIONS_PATH: fixture_bytes[0], WEIGHTS_PATH: fixture_bytes[1], ARCHIVE_PATH: archive_bytes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(store))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("SPACY_ELMO_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("SPACY_ELMO_CACHE", str(tmp_path / "cache"))
    yield store
    for gate in [*store.gates.values(), *(resume for _, resume in store.stall_after.values())]:
        gate.set()
    server.shutdown()
    server.server_close()


def cache_listing(tmp_path):
    return sorted(p.name for p in (tmp_path / "cache" / "small").iterdir()) if (tmp_path / "cache" / "small").exists() else []


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def run_module(*args, **kwargs):
    return subprocess.run([*TINY_CLI, *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, **kwargs)


def test_download_checks_and_caches_then_serves_from_cache_without_a_request(storage, fixture_bytes, tmp_path):
    directory = fetch_model("small", progress=False)
    assert directory == tmp_path / "cache" / "small"
    options, weights = directory / "options.json", directory / "weights.hdf5"
    assert (options.read_bytes(), weights.read_bytes()) == fixture_bytes
    assert cache_listing(tmp_path) == ["manifest.json", "options.json", "weights.hdf5"]
    assert load_bilm(options, weights).options.output_dim == 32
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
    known = dataclasses.replace(MODELS["small"], weights=dataclasses.replace(SMALL.weights, sha256=digest))
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
    wrong = dataclasses.replace(MODELS["small"], weights=dataclasses.replace(SMALL.weights, size=1000))
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
    with pytest.raises(DownloadError, match=re.escape(f"cannot reach {SMALL.options.url} ([Errno 101] Network is "
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
    assert resolve_model_files() == default_model_files() == resolve_model_files("default")
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
    url = SMALL.weights.url
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


def test_models_command_shows_what_is_cached(storage, tmp_path):
    before = cli("models")
    assert before.exit_code == 0
    rows = {line.split()[0]: line for line in before.stdout.splitlines()[1:]}
    assert set(rows) == set(model_names())
    assert re.search(r"^small\s+32\s+~54 MB\s+no\s", rows["small"])
    assert cli("download", "small", "--no-progress").exit_code == 0
    after = {line.split()[0]: line for line in cli("models").stdout.splitlines()[1:]}
    assert re.search(rf"^small\s+32\s+0 MB\s+{re.escape(str(tmp_path / 'cache' / 'small'))}", after["small"])


def test_embed_by_model_name(storage, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("a few words\n")
    result = cli("embed", source, tmp_path / "out.hdf5", "--model", "small", "--layers", "top")
    assert result.exit_code == 0, result.output
    import h5py

    with h5py.File(tmp_path / "out.hdf5", "r") as f:
        assert f["0"].shape == (3, 32)


@pytest.mark.parametrize("files", [["--archive", "some.tar.gz"], ["--options-file", "o.json", "--weight-file", "w.hdf5"]])
def test_embed_model_with_other_model_files_is_refused(files, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("a b\n")
    result = cli("embed", source, tmp_path / "out.hdf5", "--model", "small", *files)
    assert result.exit_code == 1 and not (tmp_path / "out.hdf5").exists()
    assert re.search("pass one of --archive, --model|pass a name or both files, not both",
                     one_error_line(result.stderr)), result.stderr


def one_error_line(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize("setup,message", [
    ("unknown", "unknown ELMo model 'smal'; known models: default, small"),
    ("404", "HTTP error 404 Not Found for http://127.0.0.1"),
    ("no network", "cannot reach http://127.0.0.1:9/allennlp/models/elmo/.*SPACY_ELMO_MIRROR"),
    ("corrupt", "options.json of 'small' failed the options check and was removed"),
    ("unwritable", "cannot write to the model cache"),
])
def test_cli_errors_are_one_line(setup, message, storage, fixture_bytes, tmp_path, monkeypatch):
    args = ["download", "small", "--no-progress"]
    if setup == "unknown":
        args[1] = "smal"
    elif setup == "404":
        del storage.files[OPTIONS_PATH]
    elif setup == "no network":
        monkeypatch.setenv("SPACY_ELMO_MIRROR", "http://127.0.0.1:9")
    elif setup == "corrupt":
        storage.files[OPTIONS_PATH] = b"{not json"
    elif setup == "unwritable":
        (tmp_path / "a-file").write_text("")
        args += ["--dir", tmp_path / "a-file" / "cache"]
    result = cli(*args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert re.search(message, one_error_line(result.stderr)), result.stderr
    assert "manifest.json" not in cache_listing(tmp_path)


def _file_size_limit():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))


def test_disk_full_through_the_cli(storage, tmp_path):
    """RLIMIT_FSIZE makes writes past 300 kB fail with EFBIG, as a full disk fails them with ENOSPC."""
    result = run_module("download", "small", "--no-progress", preexec_fn=_file_size_limit)
    assert result.returncode == 1
    assert "disk full while writing" in one_error_line(result.stderr)
    assert cache_listing(tmp_path) == ["options.json", "weights.hdf5.part"]
    assert (tmp_path / "cache" / "small" / "weights.hdf5.part").stat().st_size == 300_000


@pytest.mark.slow
def test_download_through_python_m_and_spacy_elmo(storage, tmp_path):
    result = run_module("download", "small")
    assert result.returncode == 0, result.stderr
    directory = tmp_path / "cache" / "small"
    assert result.stdout.split() == ["small:", str(directory)]
    assert "100%" in result.stderr
    n_requests = len(storage.log)
    spacy_cli = subprocess.run([*TINY_CLI, "spacy", "elmo", "download", "small"], capture_output=True,
                               text=True, timeout=300, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert spacy_cli.returncode == 0 and spacy_cli.stdout == result.stdout, spacy_cli.stderr
    assert len(storage.log) == n_requests


def test_pretraining_can_start_from_a_published_model(storage, tmp_path):
    import torch

    from spacy_elmo.training.config import TrainConfig
    from spacy_elmo.training.models import initial_model
    from spacy_elmo.training.vocab import Vocab

    config = TrainConfig(train=[], vocab="unused", output=str(tmp_path / "run"), init_from="small")
    model = initial_model(config, Vocab(["<S>", "</S>", "<UNK>", "word"]))
    published = load_bilm(*resolve_model_files("small", progress=False)).state_dict()
    assert all(torch.equal(tensor, published[key]) for key, tensor in model.bilm.state_dict().items())
    assert len(storage.requests_for(WEIGHTS_PATH)) == 1


def test_pretrain_init_from_the_transformer_by_name(storage, archive_bytes, tmp_path):
    from spacy_elmo.training.config import TrainConfig
    from spacy_elmo.training.models import initial_model
    from spacy_elmo.training.vocab import Vocab

    config = TrainConfig(train=[], vocab="unused", output=str(tmp_path / "run"), init_from="transformer",
                         bilm="transformer")
    model = initial_model(config, Vocab(["<S>", "</S>", "<UNK>", "word"]))
    published = load_any_bilm(fetch_model("transformer", progress=False)).state_dict()
    assert all(torch.equal(tensor, published[key]) for key, tensor in model.bilm.state_dict().items())
    assert storage.requests_for(ARCHIVE_PATH) == [None]


def transformer_listing(tmp_path):
    directory = tmp_path / "cache" / "transformer"
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_transformer_archive_is_downloaded_checked_and_cached(storage, archive_bytes, tmp_path):
    archive = fetch_model("transformer", progress=False)
    assert archive == tmp_path / "cache" / "transformer" / "model.tar.gz"
    assert archive.read_bytes() == archive_bytes
    assert transformer_listing(tmp_path) == ["manifest.json", "model.tar.gz"]
    manifest = json.loads((archive.parent / "manifest.json").read_text())
    assert manifest["files"]["model.tar.gz"] == {"url": MODELS["transformer"].archive.url, "size": len(archive_bytes),
                                                 "sha256": hashlib.sha256(archive_bytes).hexdigest(),
                                                 "mtime_ns": archive.stat().st_mtime_ns}
    assert storage.requests_for(ARCHIVE_PATH) == [None]
    n_requests = len(storage.log)
    assert fetch_model("transformer", progress=False) == archive
    embedder = Embedder.from_pretrained("transformer")
    assert (embedder.bilm.options.kind, embedder.bilm.n_output_layers, embedder.output_dim) == ("transformer", 3, 32)
    assert len(storage.log) == n_requests
    with pytest.raises(WeightsError, match="'transformer' is a Transformer-ELMo model archive, not the options.json "
                                           r"\+ weights.hdf5 pair asked for here"):
        resolve_model_files("transformer")


def test_transformer_download_resumes_after_a_dropped_connection(storage, archive_bytes):
    storage.cut_after[ARCHIVE_PATH] = 100_000
    assert fetch_model("transformer", progress=False).read_bytes() == archive_bytes
    first, resumed = storage.requests_for(ARCHIVE_PATH)
    assert first is None and 0 < int(re.fullmatch(r"bytes=(\d+)-", resumed).group(1)) <= 100_000


@pytest.mark.parametrize("damage,message", [
    ("truncated", "unreadable model archive"),
    ("an HTML page", "not a model archive"),
    ("no weights.th", "no file weights.th in the archive"),
])
def test_a_corrupt_transformer_archive_is_removed_and_never_cached(damage, message, storage, archive_bytes, tmp_path):
    import io
    import tarfile

    if damage == "truncated":
        storage.files[ARCHIVE_PATH] = archive_bytes[: len(archive_bytes) // 2]
    elif damage == "an HTML page":
        storage.files[ARCHIVE_PATH] = b"<html><body>Access denied by the proxy</body></html>\n" * 100
    else:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=io.BytesIO(archive_bytes)) as source, tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for member in source:
                if not member.name.endswith("weights.th"):
                    tar.addfile(member, source.extractfile(member) if member.isfile() else None)
        storage.files[ARCHIVE_PATH] = buffer.getvalue()
    with pytest.raises(DownloadError, match=f"'transformer' failed the model archive check and was removed.*{message}"):
        fetch_model("transformer", progress=False)
    assert transformer_listing(tmp_path) == []
    storage.files[ARCHIVE_PATH] = archive_bytes
    assert fetch_model("transformer", progress=False).read_bytes() == archive_bytes


def test_an_archive_put_in_the_cache_by_hand_is_checked_and_used(archive_bytes, tmp_path, monkeypatch, tiny_catalogue):
    monkeypatch.setenv("SPACY_ELMO_MIRROR", "http://127.0.0.1:9")
    (tmp_path / "transformer").mkdir()
    (tmp_path / "transformer" / "model.tar.gz").write_bytes(archive_bytes)
    assert fetch_model("transformer", cache_dir=tmp_path, progress=False) == tmp_path / "transformer" / "model.tar.gz"
    assert (tmp_path / "transformer" / "manifest.json").is_file()


def test_elmo_component_by_name_transformer_equals_the_archive(storage, tmp_path):
    import numpy as np
    import spacy
    from spacy.tokens import Doc

    sentences = [["The", "cat", "sat", "on", "the", "mat", "."], ["Hello", "world"]]
    outputs = []
    for model in ({"name": "transformer"}, {"archive": str(TRANSFORMER / "model.tar.gz")}):
        nlp = spacy.blank("en")
        nlp.add_pipe("elmo", config={"model": model})
        nlp.initialize()
        outputs.append([doc._.elmo for doc in nlp.pipe(Doc(nlp.vocab, words=words) for words in sentences)])
    assert storage.requests_for(ARCHIVE_PATH) == [None]
    for by_name, by_archive, words in zip(*outputs, sentences):
        assert by_name.shape == (3, len(words), 32)
        np.testing.assert_array_equal(by_name, by_archive)


def test_embed_by_model_name_transformer_reproduces_the_reference(storage, tmp_path):
    import h5py
    import numpy as np

    batch = json.loads((TRANSFORMER / "sentences.json").read_text(encoding="utf8"))[0]
    source = tmp_path / "in.txt"
    source.write_text("".join(" ".join(words) + "\n" for words in batch))
    result = cli("embed", source, tmp_path / "out.hdf5", "--model", "transformer", "--layers", "all")
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "out.hdf5", "r") as out, h5py.File(TRANSFORMER / "reference.hdf5", "r") as reference:
        assert len(out.keys()) - ("sentence_to_index" in out) == len(batch)
        for j in range(len(batch)):
            np.testing.assert_allclose(out[str(j)][()], reference[f"0/{j}/layers"][()], atol=1e-5)


def test_models_and_download_commands_show_the_transformer(storage, archive_bytes, tmp_path):
    rows = {line.split()[0]: line for line in cli("models").stdout.splitlines()[1:]}
    assert re.search(r"^transformer\s+32\s+\?\s+no\s+Transformer ELMo", rows["transformer"])
    result = cli("download", "transformer", "--no-progress")
    assert result.exit_code == 0, result.output
    archive = tmp_path / "cache" / "transformer" / "model.tar.gz"
    assert result.stdout.split() == ["transformer:", str(archive)]
    rows = {line.split()[0]: line for line in cli("models").stdout.splitlines()[1:]}
    size = f"{len(archive_bytes) / 1e6:.0f} MB"
    assert re.search(rf"^transformer\s+32\s+{size}\s+{re.escape(str(archive.parent))}\s", rows["transformer"])


# --- issue 17: every resource checked before it is used, downloads that finish on a bad line ------------

def cache_snapshot(tmp_path):
    root = tmp_path / "cache"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


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
    monkeypatch.setitem(MODELS, "transformer", MODELS["transformer"].__class__(
        **{**dataclasses.asdict(MODELS["transformer"]), "projection_dim": 512, "n_highway": 2,
           "archive": MODELS["transformer"].archive}))
    with pytest.raises(DownloadError, match=r"not the published 'transformer' model: projection size 16 "
                                            r"\(published: 512\), highway layers 1 \(published: 2\)"):
        fetch_model("transformer", progress=False)
    assert transformer_listing(tmp_path) == []


def test_a_cached_file_with_flipped_bits_is_refused_when_loaded(storage, tmp_path):
    weights = fetch_model("small", progress=False) / "weights.hdf5"
    damaged = bytearray(weights.read_bytes())
    damaged[len(damaged) // 2] ^= 0x10
    weights.write_bytes(bytes(damaged))
    before = cache_snapshot(tmp_path)
    with pytest.raises(DownloadError, match=rf"{re.escape(str(weights))} no longer matches the sha256 recorded in "
                                            r".*manifest\.json .*delete it and run `python -m spacy_elmo download small`"):
        fetch_model("small", progress=False)
    source = tmp_path / "in.txt"
    source.write_text("a b\n")
    result = cli("embed", source, tmp_path / "out.hdf5", "--model", "small")
    assert result.exit_code == 1 and "no longer matches the sha256" in one_error_line(result.stderr)
    assert cache_snapshot(tmp_path) == before and not (tmp_path / "out.hdf5").exists()


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
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [".small.lock"]


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
    before = cache_snapshot(tmp_path)
    for output in (directory / "weights.hdf5", directory / "vectors.hdf5"):
        result = cli("embed", source, output, "--model", "small", "--overwrite")
        assert result.exit_code == 1
        assert re.search(r"would overwrite the model folder .*cache/small", one_error_line(result.stderr))
    assert cache_snapshot(tmp_path) == before
    n_requests = len(storage.log)
    assert cli("embed", source, tmp_path / "out.hdf5", "--model", "small").exit_code == 0
    assert len(storage.log) == n_requests
