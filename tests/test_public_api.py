"""The names `spacy_elmo` exports: each resolves, the names from before the Transformer biLM are the
same objects as the LSTM's own, and importing the package (what `--help` does) loads no torch."""
import subprocess
import sys

import pytest

import spacy_elmo

ALIASES = {"BiLM": "LstmBiLM", "ElmoOptions": "LstmOptions", "load_bilm": "load_lstm_bilm",
           "save_bilm": "save_lstm_bilm"}


@pytest.mark.parametrize("name", spacy_elmo.__all__)
def test_every_exported_name_resolves(name):
    assert getattr(spacy_elmo, name) is not None


@pytest.mark.parametrize("old,new", sorted(ALIASES.items()))
def test_old_names_are_the_lstm_names(old, new):
    assert getattr(spacy_elmo, old) is getattr(spacy_elmo, new)


def test_importing_the_package_loads_neither_torch_nor_spacy():
    code = "import sys, spacy_elmo; print(sorted({'torch', 'spacy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
