"""Outputs that appear whole or not at all.

Every file or directory spacy-elmo writes is built under a temporary name beside its target and
renamed into place when complete. Only regular files and directories are written: a device, a named
pipe or a socket is refused as an output, with or without --overwrite. A symlink output is written
through: its target is checked and replaced as if named itself, and the link stays. Temporary names
carry the writer's process id, so the next run can tell the leftovers of a killed run (removed, with
a warning) from those of a live one (an error: two runs must not write the same output). New outputs
get the umask's permissions; a replaced file keeps its mode. A commit never happens after an
interrupt (see `signals`), even if some library swallowed the exception it raised.
"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Tuple, Union

from .errors import OutputError
from .signals import check_not_interrupted

logger = logging.getLogger(__name__)

TMP_SUFFIX = ".spacy-elmo-tmp"
PathLike = Union[str, Path]

_protected: List[Callable[[], Iterable[Path]]] = []


def protect(folders: Callable[[], Iterable[Path]]) -> None:
    """Add folders no output may be written into, asked for at each check (the package registers the
    model cache's folders and the bundled model, spacy_elmo/__init__.py: this module stays below hub/)."""
    if folders not in _protected:
        _protected.append(folders)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_mode(is_dir: bool) -> int:
    """Permissions of a newly created output under the current umask."""
    return (0o777 if is_dir else 0o666) & ~_umask()


def temp_path(target: PathLike) -> Path:
    """A hidden sibling of `target` that names this process, for `remove_stale` to judge later."""
    target = Path(target)
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def remove_stale(target: PathLike) -> None:
    """Remove the temp files a killed run left for `target`; refuse if a live process is writing it."""
    target = Path(target)
    if not target.parent.is_dir():
        return
    for leftover in target.parent.glob(f".{target.name}.*{TMP_SUFFIX}"):
        pid = leftover.name[len(target.name) + 2 :].split(".")[0]
        if not pid.isdigit():
            continue
        if int(pid) != os.getpid() and _pid_alive(int(pid)):
            raise OutputError(f"{target}: another process (pid {pid}) is writing it right now ({leftover.name}); "
                              "wait for it to finish or choose another output")
        if int(pid) != os.getpid():
            _remove(leftover)
            logger.warning("removed %s, left behind by an interrupted run (pid %s)", leftover, pid)


def refuse_inputs(output: PathLike, inputs: Iterable[PathLike], flag: str = "output") -> None:
    """An output may not be, hold, or lie inside an input of the command (a file, or a folder such as an
    unpacked archive or a run), a cached published model or the bundled model: writing it would destroy
    them. Paths are compared as real paths (symlinks and `..` resolved), and an existing output with
    more than one name is compared with every file of a folder input (a hard link)."""
    out = Path(output).resolve()
    linked = _hard_linked(out)
    named = [(Path(i), f"the input {i}") for i in inputs if str(i) != "-"]
    folders = [(p, f"the model folder {p}") for source in _protected for p in source()]
    for item, what in (*named, *folders):
        source = item.resolve()
        if source == out or source in out.parents or out in source.parents or \
                (linked is not None and _holds_file(source, linked)):
            raise OutputError(f"{flag} {output} would overwrite {what}; choose another {flag}")


def _hard_linked(path: Path) -> Optional[Tuple[int, int]]:
    """(device, inode) of an existing file that has other names, else None."""
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISREG(info.st_mode) and info.st_nlink > 1 else None


def _holds_file(source: Path, identity: Tuple[int, int]) -> bool:
    """Whether `source` is, or is a folder holding, the file with this (device, inode)."""
    candidates = source.rglob("*") if source.is_dir() else (source,)
    for path in candidates:
        try:
            info = path.stat()
        except OSError:
            continue
        if (info.st_dev, info.st_ino) == identity:
            return True
    return False


def _commit(tmp: Path, target: Path, is_dir: bool) -> None:
    check_not_interrupted()
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() and not is_dir else new_mode(is_dir)
    os.chmod(tmp, mode)
    if is_dir and target.exists():
        old = temp_path(target)
        os.replace(target, old)
        os.replace(tmp, target)
        _remove(old)
    else:
        os.replace(tmp, target)


_SPECIAL = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
            (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"))


def written_path(target: PathLike) -> Path:
    """The path that writing `target` replaces: `target`, or for a symlink (a chain, or one whose target
    does not exist yet) the path it points to."""
    target = Path(target)
    return target.resolve() if target.is_symlink() else target


def special_kind(path: Path) -> Optional[str]:
    """What an existing path is when it is neither a regular file nor a directory, else None."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    return next((name for test, name in _SPECIAL if test(mode)), None)


def check_target(target: PathLike, is_dir: bool = False, overwrite: bool = True, inputs: Iterable[PathLike] = (),
                 flag: str = "output") -> None:
    """Everything that would stop `AtomicOutput(target, ...)`, checked before a command does any work:
    the output is an input, is not a regular file or directory, has the wrong kind, exists without
    `overwrite`, has no directory (a file's must exist, a directory's is created), or a live process is
    writing it. A symlink is judged by what it points to (see `written_path`)."""
    target = Path(target)
    path = written_path(target)
    named = f"{target} (a link to {path})" if path != target else str(target)
    refuse_inputs(target, inputs, flag)
    special = special_kind(path)
    if special:
        raise OutputError(f"the {flag} {named} is {special}, not a regular file; spacy-elmo writes only regular "
                          f"files and directories (also with --overwrite): choose another {flag}")
    if path.exists() and not (is_dir and path.is_dir() and not any(path.iterdir())):  # an empty dir is free
        if path.is_dir() != is_dir:
            kind = "a directory" if path.is_dir() else "a file"
            raise OutputError(f"the {flag} {named} is {kind}; choose another {flag}")
        if not overwrite:
            raise OutputError(f"the {flag} {named} already exists; choose another {flag} or pass --overwrite")
    if not is_dir and not path.parent.is_dir():
        raise OutputError(f"cannot write the {flag} {named}: the directory {path.parent} does not exist")
    remove_stale(path)


class AtomicOutput:
    """A file or directory built under a temporary name and renamed onto `target` by `commit()`.

    As a context manager it removes the temporary copy unless committed, on any error or signal.
    `overwrite=False` refuses an existing target; a directory target is replaced as a whole; a
    symlink target is written through (`target` is then the path it points to).
    """

    def __init__(self, target: PathLike, is_dir: bool = False, overwrite: bool = True,
                 inputs: Iterable[PathLike] = (), flag: str = "output") -> None:
        check_target(target, is_dir, overwrite, inputs, flag)
        self.target = written_path(target)
        self.is_dir = is_dir
        if not self.target.parent.is_dir():
            try:
                self.target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise OutputError(f"cannot create the directory of the {flag} {self.target}: {err.strerror or err}") from None
        self.path = temp_path(self.target)
        self.committed = False
        try:
            if is_dir:
                self.path.mkdir()
            else:
                self.path.touch()
        except OSError as err:
            raise OutputError(f"cannot write the {flag} {self.target}: {err.strerror or err}") from None

    def commit(self) -> Path:
        _commit(self.path, self.target, self.is_dir)
        self.committed = True
        return self.target

    def discard(self) -> None:
        if not self.committed:
            _remove(self.path)

    def __enter__(self) -> "AtomicOutput":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self.committed:
            try:
                self.commit()
            finally:
                self.discard()
        else:
            self.discard()
            if isinstance(exc, OSError) and not exc.filename:  # e.g. a write through a file object
                raise OSError(exc.errno, exc.strerror or str(exc), str(self.target)) from None


def atomic_write_text(target: PathLike, text: str) -> Path:
    """Write a small text file whole or not at all."""
    with AtomicOutput(target) as out:
        out.path.write_text(text, encoding="utf8")
    return Path(target)

