"""Every change spacy-elmo makes to the process beyond its own objects, in one place, with one switch.

Importing spacy_elmo changes nothing in the process. Each effect in `EFFECTS` is made by the feature
that needs it, the first time that feature is used, and only through `install`, which records how to
undo it. `SPACY_ELMO_PATCHES=0` in the environment keeps every effect off; `disable()` undoes those
made so far and keeps the rest off for the life of the process (`enable()` lets them in again).
This module sits at the bottom of the import layers: the effects' code stays with its feature.
"""
from __future__ import annotations

import os
from typing import Callable, Dict, List

SWITCH = "SPACY_ELMO_PATCHES"

SPACY_DOC_HOOKS = "spacy-doc-hooks"
FORK_ONE_THREAD = "torch-one-thread-after-fork"
SPACY_CLI_ERRORS = "spacy-cli-errors"

EFFECTS: Dict[str, str] = {
    SPACY_DOC_HOOKS: "spaCy's Language.pipe, Language._multiprocessing_pipe and DocBin.get_docs are wrapped so "
                     "that Docs rebuilt from bytes get their ELMo vector hooks back (pipeline/spacy_patches.py); "
                     "made when an `elmo` component is built",
    FORK_ONE_THREAD: "a forked child process sets torch to one thread (os.register_at_fork): nlp.pipe(n_process=...) "
                     "workers would otherwise hang in the parent's OpenMP pool; made when an ELMo Thinc model "
                     "(spacy-elmo.ElmoModel) is built",
    SPACY_CLI_ERRORS: "every spaCy CLI command ends an ElmoError in one `Error:` line and removes the empty output "
                      "folder it made (cli/spacy_cli.py); made when spaCy's CLI loads the `spacy_cli` entry point",
}
"""What each effect changes and when it is made."""

_undo: Dict[str, Callable[[], None]] = {}
_disabled = False
_child_hooks: List[Callable[[], None]] = []
_fork_dispatcher_registered = False


def enabled() -> bool:
    """Whether effects may be made: neither `disable()` nor SPACY_ELMO_PATCHES=0."""
    return not _disabled and os.environ.get(SWITCH, "1").strip() != "0"


def install(name: str, make: Callable[[], None], undo: Callable[[], None]) -> None:
    """Make effect `name` once (`make`), remembering `undo`; nothing while the switch is off."""
    if name not in EFFECTS:
        raise KeyError(f"{name!r} is not one of spacy-elmo's process-wide effects: {', '.join(EFFECTS)}")
    if name not in _undo and enabled():
        make()
        _undo[name] = undo


def installed() -> List[str]:
    """The effects in place now, in the order they were made."""
    return list(_undo)


def disable() -> None:
    """Undo every effect made so far and make none from now on in this process."""
    global _disabled
    _disabled = True
    for name in reversed(list(_undo)):
        _undo.pop(name)()


def enable() -> None:
    """Let features make their effects again (each is made the next time its feature is used)."""
    global _disabled
    _disabled = False


def run_in_forked_children(hook: Callable[[], None]) -> None:
    """Run `hook` in every child forked from now on. os.register_at_fork cannot be taken back, so one
    dispatcher is registered, the first time, and runs the hooks listed at the fork."""
    global _fork_dispatcher_registered
    if not _fork_dispatcher_registered:
        os.register_at_fork(after_in_child=_run_child_hooks)
        _fork_dispatcher_registered = True
    if hook not in _child_hooks:
        _child_hooks.append(hook)


def stop_in_forked_children(hook: Callable[[], None]) -> None:
    if hook in _child_hooks:
        _child_hooks.remove(hook)


def _run_child_hooks() -> None:
    for hook in list(_child_hooks):
        hook()
