import shutil
from pathlib import Path

import pytest

from cli_helpers import cli
from spacy_elmo.training.trainer import train

from .helpers import KINDS, TINY_ARGS, make_corpus, tiny_config


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A corpus, its vocabulary and a 2-step tiny LSTM run; tests copy the whole tree before changing it."""
    root = make_corpus(tmp_path_factory.mktemp("trained"))
    result = cli("pretrain", root / "train", "--vocab", root / "vocab.txt", "-o", root / "run", *TINY_ARGS["lstm"],
                 "--max-steps", 2)
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def corpus(trained, tmp_path):
    """A private copy of the trained tree (also a relocated run: its paths must resolve in the copy)."""
    return Path(shutil.copytree(trained, tmp_path / "tree"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A corpus with a 2-step run of each biLM kind in it (root / "lstm", root / "transformer"): tests read
    them and write elsewhere."""
    root = make_corpus(tmp_path_factory.mktemp("runs"))
    for bilm in KINDS:
        train(tiny_config(root, bilm, max_steps=2, heldout=[], output=str(root / bilm)))
    return root


