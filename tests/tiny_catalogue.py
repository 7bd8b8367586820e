"""The catalogue's `small` and `transformer` entries resized to the fixture models that the hub tests'
server offers at their addresses (a download is checked against the catalogue's sizes). Run as a script,
it is the command line with that catalogue: `tiny_catalogue.py ARGS` is `python -m spacy_elmo ARGS`,
`tiny_catalogue.py spacy ARGS` is `python -m spacy ARGS`."""
import dataclasses
import sys

from spacy_elmo.hub import MODELS

FIXTURE_SIZES = {"small": {"lstm_dim": 64, "projection_dim": 16, "n_highway": 2},
                 "transformer": {"projection_dim": 16, "n_highway": 1}}


def resized():
    return {name: dataclasses.replace(MODELS[name], **sizes) for name, sizes in FIXTURE_SIZES.items()}


if __name__ == "__main__":
    MODELS.update(resized())
    if sys.argv[1:2] == ["spacy"]:
        from spacy.cli import setup_cli

        sys.argv = ["spacy", *sys.argv[2:]]
        setup_cli()
    else:
        from spacy_elmo.cli.app import app

        app(prog_name="python -m spacy_elmo")
