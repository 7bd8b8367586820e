"""The names `spacy_elmo` exports: each resolves, the names from before the Transformer biLM are gone
(each LSTM name says its kind), and importing the package (what `--help` does) loads no torch."""
import subprocess
import sys

import pytest

import spacy_elmo

RENAMED = {"BiLM": "LstmBiLM", "ElmoOptions": "LstmOptions", "load_bilm": "load_lstm_bilm",
           "save_bilm": "save_lstm_bilm"}


@pytest.mark.parametrize("name", spacy_elmo.__all__)
def test_every_exported_name_resolves(name):
    assert getattr(spacy_elmo, name) is not None


@pytest.mark.parametrize("old,new", sorted(RENAMED.items()))
def test_old_names_are_gone_and_the_lstm_names_resolve(old, new):
    assert old not in spacy_elmo.__all__ and getattr(spacy_elmo, new) is not None
    with pytest.raises(AttributeError):
        getattr(spacy_elmo, old)


def test_importing_the_package_loads_neither_torch_nor_spacy():
    code = "import sys, spacy_elmo; print(sorted({'torch', 'spacy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
