"""Fetching a published model into the cache.

pooch fetches each file into a temporary name and renames it into place only when it is complete and
its hash (where one is known) matches; filelock lets one process at a time work on a model while others
wait and then find it cached. Each file gets the strict check as soon as it is there (options against the
catalogue's architecture, the weights with them, or the whole archive), and only a file that fails it is
removed; the manifest that makes the model count as cached is written last, with each file's sha256, which
loading checks (cache.verify_cached). What pooch lacks, resuming with HTTP Range, is ResumingDownloader.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple

from ..errors import DISK_FULL, DownloadError, ElmoError, OptionsError, UnknownModelError
from ..folders import missing_folders, remove_empty
from .cache import (CACHE_ENV, MIRROR_ENV, PathLike, entry_files, file_record, file_sha256, is_cached, mirrored,
                    model_dir, verify_cached, write_manifest)
from .catalogue import PublishedModel, RemoteFile, get_model

CHUNK_BYTES = 1 << 16
TIMEOUT_S = (15, 60)
MAX_RESUMES = 5


class _Dropped(Exception):
    """The connection ended before the server's announced size was reached."""

    def __init__(self, received: int, total: Optional[int]) -> None:
        super().__init__(received, total)
        self.received, self.total = received, total


class ResumingDownloader:
    """A pooch downloader that continues where an earlier attempt stopped.

    pooch streams each attempt into a fresh temporary file that it deletes on failure, so a connection
    dropped 300 MB into a 374 MB file would start again from zero; it has no HTTP Range support. This
    keeps the bytes in `<file>.part`, across attempts and across runs, asks for the rest with a Range
    request, and moves the file to pooch's temporary name only once it holds every byte the server
    announced. pooch then checks the hash and renames it into place.
    """

    def __init__(self, part: Path, size: Optional[int], progress: bool, by_hand: str = "") -> None:
        self.part, self.size, self.progress, self.by_hand = part, size, progress, by_hand

    @property
    def target(self) -> Path:
        return self.part.with_name(self.part.name[: -len(".part")])

    def __call__(self, url: str, output_file: str, pooch: object = None) -> None:
        import requests

        with requests.Session() as session:
            for attempt in range(MAX_RESUMES + 1):
                try:
                    self._attempt(session, url)
                    break
                except _Dropped as dropped:
                    if attempt == MAX_RESUMES:
                        raise DownloadError(
                            f"{url}: the connection dropped {attempt + 1} times, the last after {dropped.received} "
                            f"of {dropped.total} bytes; run the download again to resume from {self.part}") from None
        os.replace(self.part, output_file)

    def _attempt(self, session, url: str) -> None:
        offset = self.part.stat().st_size if self.part.is_file() else 0
        with self._get(session, url, offset) as response:
            if response.status_code == 416:
                if response.headers.get("Content-Range") == f"bytes */{offset}":
                    return
                self.part.unlink()
                raise _Dropped(0, None)
            if response.status_code >= 400:
                raise DownloadError(f"HTTP error {response.status_code} {response.reason} for {url}")
            start = offset if _continues(response, offset) else 0
            total = _announced_total(response, start)
            if self.size is not None and total is not None and total != self.size:
                raise DownloadError(f"{url} has {total} bytes, the catalogue expects {self.size}: not the published "
                                    f"file (check {MIRROR_ENV} if set)")
            self._check_space(total, start)
            received = self._stream(response, start, total)
        if total is not None and received > total:
            self.part.unlink()
            raise DownloadError(f"{url}: received {received} bytes, more than the {total} announced; the "
                                "download was removed, run it again")
        if total is not None and received < total:
            raise _Dropped(received, total)

    def _get(self, session, url: str, offset: int):
        import requests

        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            return session.get(url, headers=headers, stream=True, timeout=TIMEOUT_S)
        except requests.RequestException as err:
            files = self.by_hand or f"{url} -> {self.target}"
            by_hand = f"download every file of the model by hand ({files}) and run the download again"
            if os.environ.get(MIRROR_ENV, "").strip():
                raise DownloadError(
                    f"cannot reach {url} ({_reason(err)}) through the mirror {MIRROR_ENV}="
                    f"{os.environ[MIRROR_ENV].strip()}: check that it is up and serves the published paths, unset "
                    f"it to use the original servers, or {by_hand}") from None
            raise DownloadError(
                f"cannot reach {url} ({_reason(err)}); offline or behind a proxy? Set {MIRROR_ENV} to a server "
                f"with the same paths (e.g. {MIRROR_ENV}=https://mirror.example.org), or {by_hand}") from None

    def _check_space(self, total: Optional[int], start: int) -> None:
        if total is not None and shutil.disk_usage(self.part.parent).free < total - start:
            raise DownloadError(f"not enough disk space for {self.target} ({(total - start) / 1e6:.1f} MB more "
                                f"needed in {self.part.parent}); free space, or set {CACHE_ENV} or --dir to a larger disk")

    def _stream(self, response, start: int, total: Optional[int]) -> int:
        """Bytes in the .part file when the stream ends, whether it ended cleanly or dropped.

        The body is read one network read at a time (urllib3's read1) and written unbuffered, so a drop
        or a kill loses nothing that was received. (requests' iter_content fills a whole chunk first and
        loses it when the connection drops inside it: a line that drops every 50 KB never kept a byte.)
        """
        from tqdm import tqdm
        from urllib3.exceptions import HTTPError

        with open(self.part, "ab" if start else "wb", buffering=0) as out, \
                tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                     desc=self.target.name, disable=not self.progress) as bar:
            while True:
                try:
                    chunk = response.raw.read1(CHUNK_BYTES, decode_content=True)
                except (HTTPError, ConnectionError, TimeoutError):
                    if total is None:
                        raise _Dropped(out.tell(), None) from None
                    break
                if not chunk:
                    break
                out.write(chunk)
                bar.update(len(chunk))
            return out.tell()


def _continues(response, offset: int) -> bool:
    """Whether the server answered our Range request with exactly the bytes from `offset` on."""
    return bool(offset) and response.status_code == 206 and \
        response.headers.get("Content-Range", "").startswith(f"bytes {offset}-")


def _announced_total(response, start: int) -> Optional[int]:
    content_range = response.headers.get("Content-Range", "")
    if response.status_code == 206 and "/" in content_range and content_range.rsplit("/", 1)[1].isdigit():
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length", "")
    return start + int(length) if length.isdigit() else None


def _reason(err: Exception) -> str:
    """The operating system's words for a requests error (refused, name not known), without urllib3's wrapping."""
    text = str(err)
    found = re.findall(r"\[Errno -?\d+\] [^'\"()]+", text)
    if found:
        return found[-1].strip()
    return "timed out" if "timed out" in text.lower() else type(err).__name__


def _write_error(err: OSError, path: Path) -> DownloadError:
    if err.errno in DISK_FULL:
        return DownloadError(f"disk full while writing {path} ({os.strerror(err.errno)}); free space, or set "
                             f"{CACHE_ENV} or --dir to a larger disk (the partial download is kept and resumes)")
    return DownloadError(f"cannot write to the model cache at {path} ({err.strerror or err}); set {CACHE_ENV} "
                         "or --dir to a writable directory")


@contextmanager
def _quiet_pooch() -> Iterator[None]:
    """pooch logs every download at INFO; the progress bar and our messages say enough."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _fetch_file(remote: RemoteFile, path: Path, progress: bool = True, by_hand: str = "") -> None:
    """`path` complete and matching the known hash, or nothing at `path` and an error. `by_hand` says
    where each file of the model comes from and goes, for an error that suggests fetching them by hand."""
    import pooch

    url = mirrored(remote.url)
    known_hash = f"sha256:{remote.sha256}" if remote.sha256 else None
    downloader = ResumingDownloader(path.with_name(path.name + ".part"), remote.size, progress, by_hand)
    try:
        with _quiet_pooch():
            pooch.retrieve(url, known_hash, fname=path.name, path=path.parent, downloader=downloader)
    except ElmoError:
        raise
    except ValueError as err:
        raise DownloadError(f"{url}: the download is corrupt ({str(err).splitlines()[0]}); it was removed, "
                            "run the download again") from None
    except OSError as err:
        raise _write_error(err, path) from None
    except KeyboardInterrupt as err:
        kept = downloader.part.stat().st_size if downloader.part.is_file() else 0
        if kept:
            err.left_behind = (f"the partial download {downloader.part} ({kept:,} bytes) is kept: run the same "
                               "command again to resume")
        raise


@contextmanager
def _exclusive(lock_path: Path, name: str) -> Iterator[None]:
    """One process at a time per model; a second one says why it waits, then finds the model cached.

    A failed download removes the lock file (while holding it), so that a failed first download leaves
    nothing in the cache root; a process that was waiting on the removed file locks a new one instead."""
    from filelock import FileLock, Timeout

    while True:
        lock = FileLock(str(lock_path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            print(f"waiting for another process that is downloading '{name}' ({lock_path})", file=sys.stderr,
                  flush=True)
            lock.acquire()
        if lock_path.exists():
            break
        lock.release()
    done = False
    try:
        yield
        done = True
    finally:
        if not done:
            try:
                lock_path.unlink(missing_ok=True)
            except OSError:  # Windows: open elsewhere
                pass
        lock.release()


def _check_file(model: PublishedModel, paths: Tuple[Path, ...], path: Path) -> None:
    """The strict check of one fetched file, before the next one is fetched: a file before the last
    (options.json) read on its own, the last one loaded with those before it (the weights with their
    options, or an archive whole), each against the catalogue's architecture. Only a file that fails is
    removed (the next run fetches it again): one that passed, downloaded or put there by hand, is never
    lost to another file's failure."""
    kind = model.kind
    what = kind.roles[paths.index(path)]
    try:
        options = (kind.load_files(*paths).options if path == paths[-1]
                   else kind.options.from_file(path))
        _check_architecture(model, options)
    except ElmoError as err:
        path.unlink(missing_ok=True)
        raise DownloadError(f"{path.name} of '{model.name}' failed the {what} check and was removed from the "
                            f"cache ({err}); run the download again") from None


def _check_architecture(model: PublishedModel, options: Any) -> None:
    """Sizes the catalogue records for the published model, where it records them: a server (a mirror)
    that offers another valid model under this name is refused, not cached. A size is read from the
    options only where the entry records it (an LSTM size only for an entry of that kind)."""
    sizes = (("LSTM size", model.lstm_dim, lambda: options.lstm_dim),
             ("projection size", model.projection_dim, lambda: options.output_dim // 2),
             ("highway layers", model.n_highway, lambda: options.n_highway))
    wrong = [f"{label} {found()} (published: {value})" for label, value, found in sizes
             if value is not None and found() != value]
    if wrong:
        mirror = os.environ.get(MIRROR_ENV, "").strip()
        raise OptionsError(f"not the published '{model.name}' model: {', '.join(wrong)}"
                           + (f"; check the mirror {MIRROR_ENV}={mirror}" if mirror else ""))


def _download(model: PublishedModel, directory: Path, paths: Tuple[Path, ...], progress: bool) -> None:
    """Fetch and check every file, then write the manifest that makes the model cached. Folders this
    made are removed again on failure if they stayed empty (a kept .part is not empty)."""
    created = missing_folders(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with _exclusive(directory.parent / f".{model.name}.lock", model.name):
            if is_cached(paths):
                return
            by_hand = ", ".join(f"{remote.url} -> {path}" for remote, path in zip(model.remotes, paths))
            for remote, path in zip(model.remotes, paths):
                _fetch_file(remote, path, progress, by_hand)
                _check_file(model, paths, path)
            write_manifest(directory, model.name, {path.name: file_record(path, remote.url, file_sha256(path))
                                                   for remote, path in zip(model.remotes, paths)})
    except BaseException as err:
        remove_empty(created)
        if isinstance(err, OSError):
            raise _write_error(err, directory) from None
        raise


def fetch_model(name: str, cache_dir: Optional[PathLike] = None, progress: bool = True) -> Path:
    """A catalogue model in the cache, as the path load_any_bilm reads: the folder holding options.json +
    weights.hdf5, or the model archive. Found without any request when cached (and checked against the
    sha256 its manifest recorded, see verify_cached), else downloaded, checked and cached first."""
    model = get_model(name)
    if model.folder is not None:
        raise UnknownModelError(f"{name!r} is the bundled model, nothing to download; resolve_model_files() or "
                                f"resolve_model_files({name!r}) gives its files")
    directory = model_dir(model, cache_dir)
    paths = entry_files(model, directory)
    if not is_cached(paths):
        _download(model, directory, paths, progress)
    verify_cached(name, paths)
    return model.kind.loadable(directory)
