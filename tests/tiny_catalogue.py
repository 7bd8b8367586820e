"""Catalogue entries resized to the fixture models that the test servers offer at their addresses (a
download is checked against the catalogue's sizes): the LSTM test biLM for an LSTM entry, the
Transformer-ELMo test archive for an archive entry. The hub tests resize `small` and `transformer`,
the docs test every entry (through a sitecustomize that calls `install`). Run as a script,
it is the command line with that catalogue: `tiny_catalogue.py ARGS` is `python -m spacy_elmo ARGS`,
`tiny_catalogue.py spacy ARGS` is `python -m spacy ARGS`."""
import dataclasses
import sys

from spacy_elmo.bilm.kinds import LSTM, TRANSFORMER
from spacy_elmo.hub import MODELS

FIXTURE_SIZES = {LSTM.name: {"lstm_dim": 64, "projection_dim": 16, "n_highway": 2},
                 TRANSFORMER.name: {"projection_dim": 16, "n_highway": 1}}


def resized(*names: str):
    """The entries `names` (all without names), sized as the fixtures."""
    return {name: dataclasses.replace(MODELS[name], **FIXTURE_SIZES[MODELS[name].kind.name])
            for name in names or tuple(MODELS)}


def install(*names: str) -> None:
    MODELS.update(resized(*names))


if __name__ == "__main__":
    install("small", "transformer")
    if sys.argv[1:2] == ["spacy"]:
        from spacy.cli import setup_cli

        sys.argv = ["spacy", *sys.argv[2:]]
        setup_cli()
    else:
        from spacy_elmo.cli.app import app

        app(prog_name="python -m spacy_elmo")
