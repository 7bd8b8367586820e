"""Shared by the hub tests: the catalogue paths the fixtures are served under, a real HTTP server on
127.0.0.1 with faults to order, and readers of the cache and of one-line errors."""
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from spacy_elmo.hub import MODELS

from conftest import ROOT, TRANSFORMER_FIXTURES as TRANSFORMER

SMALL = MODELS["small"]
OPTIONS_PATH, WEIGHTS_PATH = (urlsplit(f.url).path for f in SMALL.remotes)
(ARCHIVE_PATH,) = (urlsplit(f.url).path for f in MODELS["transformer"].remotes)
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


def cache_listing(tmp_path, name="small"):
    directory = tmp_path / "cache" / name
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def one_error_line(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in stderr, stderr
    return lines[0]
