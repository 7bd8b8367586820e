"""spacy_elmo.process: importing the package changes nothing in the process, each effect is made when its
feature is used, and the switch (SPACY_ELMO_PATCHES=0, `disable()`) keeps or takes every one of them off.
Each case runs in a fresh interpreter, so what it installs cannot leak into other tests."""
import subprocess
import sys
import textwrap

import pytest

from cli_helpers import child_env

PRELUDE = """
import os, pkgutil, torch
import spacy
from spacy.cli._util import app as spacy_app
from spacy.language import Language
from spacy.tokens import DocBin

def spacy_state():
    return ([Language.pipe, Language._multiprocessing_pipe, DocBin.get_docs],
            [info.callback for info in spacy_app.registered_commands])

def threads_in_forked_child():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, str(torch.get_num_threads()).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    return int(os.read(read, 16))

torch.set_num_threads(2)
before = spacy_state()
"""


def run_python(code: str, **env: str) -> None:
    result = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], capture_output=True, text=True,
                            env={**child_env(), **env}, timeout=300)
    assert result.returncode == 0, result.stderr


def test_importing_every_module_but_the_spacy_cli_entry_point_changes_nothing():
    run_python("""
        import spacy_elmo
        from spacy_elmo import process
        names = [m.name for m in pkgutil.walk_packages(spacy_elmo.__path__, "spacy_elmo.")
                 if m.name not in ("spacy_elmo.__main__", "spacy_elmo.cli.spacy_cli")]
        for name in names:
            __import__(name)
        assert "spacy_elmo.pipeline.pipe" in names and "spacy_elmo.pipeline.model" in names
        assert process.installed() == [] and spacy_state() == before
        assert threads_in_forked_child() == 2
    """)


def test_each_effect_comes_with_its_feature_and_disable_takes_all_back():
    run_python("""
        from spacy_elmo import process
        spacy.blank("en").add_pipe("elmo")
        assert process.installed() == [process.FORK_ONE_THREAD, process.SPACY_DOC_HOOKS]
        pipes, callbacks = spacy_state()
        assert all(p is not b for p, b in zip(pipes, before[0])) and callbacks == before[1]
        assert threads_in_forked_child() == 1
        import spacy_elmo.cli.spacy_cli
        assert process.installed()[-1] == process.SPACY_CLI_ERRORS
        assert all(c is not b for c, b in zip(spacy_state()[1], before[1]))
        process.disable()
        assert process.installed() == [] and spacy_state() == before
        assert threads_in_forked_child() == 2
        spacy.blank("en").add_pipe("elmo")
        assert process.installed() == [] and spacy_state() == before
        process.enable()
        spacy.blank("en").add_pipe("elmo")
        assert process.installed() == [process.FORK_ONE_THREAD, process.SPACY_DOC_HOOKS]
    """)


def test_environment_switch_keeps_every_effect_off():
    run_python("""
        from spacy_elmo import process
        nlp = spacy.blank("en")
        nlp.add_pipe("elmo")
        import spacy_elmo.cli.spacy_cli
        assert process.installed() == [] and spacy_state() == before
        assert threads_in_forked_child() == 2
        assert "elmo" in [group.name for group in spacy_app.registered_groups]
    """, SPACY_ELMO_PATCHES="0")


def test_an_effect_outside_the_table_is_refused():
    from spacy_elmo import process

    with pytest.raises(KeyError, match="something-else"):
        process.install("something-else", lambda: None, lambda: None)
    assert "something-else" not in process.installed()
