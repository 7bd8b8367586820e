"""Where downloaded models live, and when a model there counts as cached.

Layout: `<cache>/<name>/` holds the files of the model's kind (bilm/kinds.py: `options.json` +
`weights.hdf5`, the names an `export` writes, so a cached model is also a valid `--init-from` directory,
or `model.tar.gz` for a model archive), and `manifest.json`, written last, only after the files passed
the strict options/weights (or archive) check, with each file's sha256, which loading compares (verify_cached) whenever the file's stat differs
from the one recorded (STAMP). A model without a matching manifest is not cached, whatever else lies in
its directory. No command writes into a model's folder (protected_paths, which the package hands to the
output guard in atomic.py).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

from ..atomic import PathLike
from ..errors import DownloadError, WeightsError
from .catalogue import MODELS, PublishedModel

CACHE_ENV = "SPACY_ELMO_CACHE"
MIRROR_ENV = "SPACY_ELMO_MIRROR"
MANIFEST_NAME = "manifest.json"


def cache_root(override: Optional[PathLike] = None) -> Path:
    """`override` (the --dir option), else $SPACY_ELMO_CACHE, else the platform's user cache directory."""
    if override:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("spacy-elmo", appauthor=False))


def model_dir(model: PublishedModel, root: Optional[PathLike] = None) -> Path:
    """Where the model's files are: the folder it is bundled in, or its folder in the cache."""
    return model.folder if model.folder is not None else cache_root(root) / model.name


def protected_paths() -> Tuple[Path, ...]:
    """What no command may write into, whatever it reads: every catalogue model's folder, cached or
    bundled (a pipeline or a later command loads them by name, not by path)."""
    return tuple(model_dir(model) for model in MODELS.values())


def entry_files(model: PublishedModel, directory: Path) -> Tuple[Path, ...]:
    """Where the files of the model's kind are (those of `model.remotes`, in their order)."""
    return tuple(directory / name for name in model.kind.files)


def bundled_files(model: PublishedModel) -> Tuple[Path, ...]:
    """The files of a model shipped in the package, or a clear error saying what to pass instead."""
    paths = entry_files(model, model_dir(model))
    if not all(path.is_file() for path in paths):
        raise WeightsError(f"the {model.name} ELMo model is not bundled in this installation ({model.folder}); "
                           "pass an options file and a weight file (official AllenNLP/bilm-tf files or ones from "
                           "`python -m spacy_elmo export`)")
    return paths


def mirrored(url: str) -> str:
    """`url` with the scheme and host (and any leading path) of $SPACY_ELMO_MIRROR, keeping its own path."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return url
    base, parts = urlsplit(mirror), urlsplit(url)
    if not (base.scheme and base.netloc):
        raise DownloadError(f"{MIRROR_ENV}={mirror!r} is not an address; set it to a scheme and host such as "
                            "https://mirror.example.org (a path after the host is kept as a prefix)")
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, ""))


def read_manifest(directory: Path) -> Optional[Dict]:
    try:
        return json.loads((directory / MANIFEST_NAME).read_text(encoding="utf8"))
    except (OSError, ValueError):
        return None


def is_cached(paths: Tuple[Path, ...]) -> bool:
    """Whether the manifest beside `paths` vouches for every one of them and their sizes still match it;
    a stat, never a request."""
    manifest = read_manifest(paths[0].parent)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return False
    for path in paths:
        entry = manifest["files"].get(path.name)
        if not isinstance(entry, dict) or not path.is_file() or path.stat().st_size != entry.get("size"):
            return False
    return True


def write_manifest(directory: Path, name: str, files: Dict[str, Dict]) -> None:
    """Written to a temporary name of this process and renamed, so a crash never leaves a manifest
    half-written and two processes never write the same temporary file."""
    tmp = directory / f".{MANIFEST_NAME}.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps({"name": name, "files": files}, indent=2) + "\n", encoding="utf8")
        os.replace(tmp, directory / MANIFEST_NAME)
    finally:
        tmp.unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


STAMP = ("st_size", "st_mtime_ns", "st_ctime_ns", "st_ino")
"""What a file's stat must show again for a load to trust its earlier hash. Size and mtime alone miss an
in-place change whose writer put them back (a restored backup, `os.utime`); the ctime (which no file call
can set back: the kernel stamps it at every change of content or metadata) and the inode (a file replaced
by another) catch it. A file that was only copied or chmod-ed is hashed once more, then trusted again."""


def stamp(path: Path) -> Dict[str, int]:
    info = path.stat()
    return {field[3:]: getattr(info, field) for field in STAMP}


def file_record(path: Path, url: str, sha256: str) -> Dict:
    """A manifest entry: where the file came from, its sha256, and the stamp at which it matched."""
    return {"url": url, "sha256": sha256, **stamp(path)}


def verify_cached(name: str, paths: Tuple[Path, ...]) -> None:
    """Each cached file against the sha256 its manifest recorded. A file whose stamp (size, mtime, ctime,
    inode) is the one recorded when it last matched costs a stat; any other is hashed, and a match is
    recorded (when the cache is writable) so that the next load costs a stat again."""
    directory = paths[0].parent
    manifest = read_manifest(directory)
    files = manifest["files"]
    changed = False
    for path in paths:
        entry = files[path.name]
        now = stamp(path)
        if all(entry.get(key) == value for key, value in now.items()):
            continue
        if file_sha256(path) != entry.get("sha256"):
            raise DownloadError(f"{path} no longer matches the sha256 recorded in {directory / MANIFEST_NAME} when "
                                f"it was cached (it was changed or damaged on disk); delete it and run `python -m "
                                f"spacy_elmo download {name}` to fetch it again")
        entry.update(now)
        changed = True
    if changed:
        try:
            write_manifest(directory, name, files)
        except OSError:  # a read-only cache: verified all the same, only not remembered
            pass
