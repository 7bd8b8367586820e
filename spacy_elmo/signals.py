"""SIGINT and SIGTERM, handled one of two ways.

Every command runs under `handled_signals`: a signal raises `Interrupted` at once, so `finally`
blocks remove temp files, and is remembered, so an output is never committed after one even if
some library swallowed the exception. A training loop adds `stop_requests` on top: the first signal
only asks it to checkpoint and stop after the current step (a step is never cut in half); a second
one raises `Interrupted` as before, without a checkpoint (the previous one stays intact).
"""
from __future__ import annotations

import signal
import sys
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, Optional

INTERRUPTS = (signal.SIGINT, signal.SIGTERM)

_received: list = []


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: unwind (removing temp files) and exit with 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def received_signal() -> Optional[int]:
    """The first interrupting signal this process received while signals were handled, if any."""
    return _received[0] if _received else None


def check_not_interrupted() -> None:
    """Raise if a signal was received, even one whose exception a library swallowed."""
    signum = received_signal()
    if signum is not None:
        raise Interrupted(signum)


@contextmanager
def _installed(handlers: Dict[int, Any]) -> Iterator[None]:
    """`handlers` for the duration, then the previous ones; outside the main thread, where Python
    allows no handlers, signals are left alone."""
    previous = {}
    for signum, handler in handlers.items():
        try:
            previous[signum] = signal.signal(signum, handler)
        except ValueError:
            pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _raise_interrupt(signum: int, frame) -> None:
    _received.append(signum)
    raise Interrupted(signum)


@contextmanager
def handled_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Interrupted` and are remembered; SIGXFSZ is ignored, so exceeding a
    file size limit is an error (EFBIG) like a full disk instead of killing the process."""
    _received.clear()
    handlers: Dict[int, Any] = dict.fromkeys(INTERRUPTS, _raise_interrupt)
    if hasattr(signal, "SIGXFSZ"):
        handlers[signal.SIGXFSZ] = signal.SIG_IGN
    unraisable_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_interrupts(unraisable_hook)
    try:
        with _installed(handlers):
            yield
    finally:
        sys.unraisablehook = unraisable_hook
        _received.clear()


def quiet_worker() -> None:
    """The initializer of a worker process a command starts (they inherit its handlers): SIGTERM, with
    which the parent stops its workers when it fails, ends one quietly, and Ctrl-C, which the terminal
    sends to the whole process group, is left to the parent, which then stops them."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _quiet_interrupts(hook: Callable[[Any], None]) -> Callable[[Any], None]:
    """An interrupt raised where Python cannot propagate it (a finalizer, a weakref callback) is ignored
    with a printed traceback; it is recorded already, so print nothing."""

    def quiet(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, Interrupted):
            hook(unraisable)

    return quiet


class StopRequest:
    """Whether (and by which signal) a stop was asked for; see `stop_requests`."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum


@contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """The first SIGINT/SIGTERM sets the request that this yields; a second one raises `Interrupted`."""
    request = StopRequest()
    with _installed(dict.fromkeys(INTERRUPTS, request._handle)):
        yield request
