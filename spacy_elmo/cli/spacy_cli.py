"""`spacy elmo COMMAND`: spaCy's CLI loads this module through the `spacy_cli` entry point."""
from spacy.cli._util import app as spacy_app

from .app import app

spacy_app.add_typer(app, name="elmo")
