"""Command line: `python -m spacy_elmo COMMAND` (also `spacy elmo COMMAND`)."""
from __future__ import annotations

import typer

app = typer.Typer(name="elmo", help="ELMo biLMs: embed text, build vocabularies, pretrain, evaluate, export.",
                  no_args_is_help=True, add_completion=False)
