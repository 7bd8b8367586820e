"""Fixtures of the hub tests: the fixture models' bytes, the catalogue resized to them, and a test server
the mirror and cache point at."""
import threading
from http.server import ThreadingHTTPServer

import pytest

from spacy_elmo.hub import MODELS

from tiny_catalogue import resized

from .helpers import OPTIONS_PATH, WEIGHTS_PATH, ARCHIVE_PATH, TRANSFORMER, Storage, handler_for


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
