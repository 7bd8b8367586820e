"""Fetching a published model into the cache.

pooch fetches each file into a temporary name and renames it into place only when it is complete and
its hash (where one is known) matches; filelock lets one process at a time work on a model while others
wait and then find it cached; the strict options/weights (or archive) check runs before the manifest that
makes the model count as cached is written. What pooch lacks, resuming with HTTP Range, is ResumingDownloader.
"""
from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Tuple

from ..errors import DownloadError, ElmoError
from .cache import (CACHE_ENV, MIRROR_ENV, PathLike, entry_files, is_cached, loadable_path, mirrored, model_dir,
                    write_manifest)
from .catalogue import PublishedModel, RemoteFile, get_model

CHUNK_BYTES = 1 << 16
TIMEOUT_S = (15, 60)
MAX_RESUMES = 5
DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


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

    def __init__(self, part: Path, size: Optional[int], progress: bool) -> None:
        self.part, self.size, self.progress = part, size, progress

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
            raise DownloadError(
                f"cannot reach {url} ({_reason(err)}); offline or behind a proxy? Set {MIRROR_ENV} to a server "
                f"with the same paths (e.g. {MIRROR_ENV}=https://mirror.example.org), or download the file by "
                f"hand to {self.target} and run the download again") from None

    def _check_space(self, total: Optional[int], start: int) -> None:
        if total is not None and shutil.disk_usage(self.part.parent).free < total - start:
            raise DownloadError(f"not enough disk space for {self.target} ({(total - start) / 1e6:.1f} MB more "
                                f"needed in {self.part.parent}); free space, or set {CACHE_ENV} or --dir to a larger disk")

    def _stream(self, response, start: int, total: Optional[int]) -> int:
        """Bytes in the .part file when the stream ends, whether it ended cleanly or dropped."""
        import requests
        from tqdm import tqdm

        with open(self.part, "ab" if start else "wb") as out, \
                tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                     desc=self.target.name, disable=not self.progress) as bar:
            try:
                for chunk in response.iter_content(CHUNK_BYTES):
                    out.write(chunk)
                    bar.update(len(chunk))
            except requests.RequestException:
                if total is None:
                    raise _Dropped(out.tell(), None) from None
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


def _fetch_file(remote: RemoteFile, path: Path, progress: bool = True) -> None:
    """`path` complete and matching the known hash, or nothing at `path` and an error."""
    import pooch

    url = mirrored(remote.url)
    known_hash = f"sha256:{remote.sha256}" if remote.sha256 else None
    downloader = ResumingDownloader(path.with_name(path.name + ".part"), remote.size, progress)
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


@contextmanager
def _exclusive(lock_path: Path, name: str) -> Iterator[None]:
    """One process at a time per model; a second one says why it waits, then finds the model cached."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"waiting for another process that is downloading '{name}' ({lock_path})", file=sys.stderr, flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _accept(model: PublishedModel, paths: Tuple[Path, ...]) -> None:
    """Load the files with the strict check (options/weights, or the whole archive); only then write the
    manifest. Files that fail are removed."""
    from pooch import file_hash

    from ..bilm.archive import load_archive
    from ..bilm.weights import load_bilm

    try:
        if model.archive is not None:
            load_archive(*paths)
        else:
            load_bilm(*paths)
    except ElmoError as err:
        for path in paths:
            path.unlink(missing_ok=True)
        check = "model archive" if model.archive is not None else "options/weights"
        raise DownloadError(f"the files of '{model.name}' failed the {check} check and were removed "
                            f"from the cache ({err}); run the download again") from None
    write_manifest(paths[0].parent, model.name, {
        path.name: {"url": remote.url, "size": path.stat().st_size, "sha256": file_hash(str(path))}
        for remote, path in zip(model.remotes, paths)})


def fetch_model(name: str, cache_dir: Optional[PathLike] = None, progress: bool = True) -> Path:
    """A catalogue model in the cache, as the path load_any_bilm reads: the folder holding options.json +
    weights.hdf5, or the model archive. Found without any request when cached, else downloaded,
    checked and cached first."""
    model = get_model(name)
    directory = model_dir(name, cache_dir)
    paths = entry_files(model, directory)
    if not is_cached(paths):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with _exclusive(directory.parent / f".{name}.lock", name):
                if not is_cached(paths):
                    for remote, path in zip(model.remotes, paths):
                        _fetch_file(remote, path, progress)
                    _accept(model, paths)
        except OSError as err:
            raise _write_error(err, directory) from None
    return loadable_path(model, directory)
