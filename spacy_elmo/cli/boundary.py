"""The command line's error boundary: every failure becomes one line on stderr and a non-zero exit.

A user error (an `ElmoError`), a system error (a missing or unreadable file, a full disk, no
memory) or an interrupt prints `Error: ...` naming the file, option or value and what to do.
Set SPACY_ELMO_DEBUG=1 to get the full traceback instead.
"""
from __future__ import annotations

import errno
import functools
import os
import signal
from typing import Any, Callable

import typer

from ..signals import Interrupted, handled_signals, received_signal
from ..errors import DISK_FULL, ElmoError

DEBUG_ENV = "SPACY_ELMO_DEBUG"


def debug() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _os_message(err: OSError) -> str:
    where = f"{err.filename}: " if err.filename else ""
    what = err.strerror or str(err)
    if err.errno in DISK_FULL:
        return f"{where}{what}: the disk is full (or a file size limit was hit); nothing was written, free some space and run again"
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"{where}{what}: check the permissions of the file and its directory"
    return f"{where}{what}"


def error_line(err: BaseException) -> str:
    """One line naming what went wrong and what to do about it."""
    if isinstance(err, KeyboardInterrupt):
        name = signal.Signals(err.signum).name if isinstance(err, Interrupted) else "SIGINT"
        message = f"interrupted ({name}); {getattr(err, 'left_behind', 'no partial output was left behind')}"
    elif isinstance(err, ElmoError):
        message = str(err)
    elif isinstance(err, OSError):
        message = _os_message(err)
    elif isinstance(err, MemoryError):
        message = "out of memory; use a smaller --batch-size (or a smaller model) and run again"
    else:
        text = " ".join(str(err).split())
        text = text if len(text) <= 300 else text[:300] + " ..."
        message = (f"unexpected {type(err).__name__}: {text}; run again with {DEBUG_ENV}=1 for the traceback "
                   "and please report it")
    return "Error: " + " ".join(message.split())


def exit_code(err: BaseException) -> int:
    if isinstance(err, Interrupted):
        return 128 + err.signum
    if isinstance(err, KeyboardInterrupt):
        return 128 + signal.SIGINT
    return 1


def fail(err: BaseException) -> None:
    typer.echo(error_line(err), err=True)
    raise typer.Exit(exit_code(err))


def _is_click(err: BaseException) -> bool:
    """click's own exceptions (usage errors, exits), from click or from the copy typer may vendor."""
    return type(err).__module__.split(".")[0] in ("click", "typer")


def error_boundary(command: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a typer command so that nothing but one `Error:` line reaches the user (see the module docstring)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        with handled_signals():
            try:
                result = command(*args, **kwargs)
            except BaseException as err:  # noqa: B902 - the boundary is the one place that may
                if debug() or isinstance(err, (SystemExit, GeneratorExit)) or _is_click(err):
                    raise
                fail(err)
            signum = received_signal()
            if signum is not None:
                fail(Interrupted(signum))
            return result

    return run


class ElmoTyper(typer.Typer):
    """A Typer app whose every command runs inside `error_boundary`."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        register = super().command(*args, **kwargs)
        return lambda func: register(error_boundary(func))
