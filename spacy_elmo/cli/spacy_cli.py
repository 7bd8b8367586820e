"""`spacy elmo COMMAND`: spaCy's CLI loads this module through the `spacy_cli` entry point before it runs
any command. It also puts spaCy's own commands inside spacy-elmo's error boundary for spacy-elmo's errors
only: a `spacy train` whose biLM cannot be had (a catalogue name offline, a missing weight file) ends in one
`Error:` line instead of spaCy's traceback, and the output folder spaCy made for it is removed while empty.
That wrapping is one of spacy-elmo's process-wide effects (spacy_elmo/process.py): SPACY_ELMO_PATCHES=0 leaves
spaCy's commands as they are."""
from __future__ import annotations

import functools
from typing import Any, Callable

from spacy.cli._util import app as spacy_app

from .. import process
from ..errors import ElmoError
from ..folders import missing_folders, remove_empty
from .app import app
from .boundary import debug, fail

OUTPUT_PARAMETERS = ("output_path", "output_dir")


def elmo_errors_as_one_line(command: Callable[..., Any]) -> Callable[..., Any]:
    """`command` (a spaCy CLI callback) with an ElmoError turned into one line and exit status 1, and
    the output folder removed again if the command made it and it stayed empty."""
    if getattr(command, "_elmo_errors_as_one_line", False):
        return command

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        outputs = [kwargs[name] for name in OUTPUT_PARAMETERS if kwargs.get(name)]
        created = [folder for output in outputs for folder in missing_folders(output)]
        try:
            return command(*args, **kwargs)
        except ElmoError as err:
            if debug():
                raise
            remove_empty(created)
            fail(err)

    run._elmo_errors_as_one_line = True  # type: ignore[attr-defined]
    return run


def wrap_spacy_commands() -> None:
    for info in spacy_app.registered_commands:
        info.callback = elmo_errors_as_one_line(info.callback)


def unwrap_spacy_commands() -> None:
    for info in spacy_app.registered_commands:
        while getattr(info.callback, "_elmo_errors_as_one_line", False):
            info.callback = info.callback.__wrapped__


process.install(process.SPACY_CLI_ERRORS, wrap_spacy_commands, unwrap_spacy_commands)
spacy_app.add_typer(app, name="elmo")
