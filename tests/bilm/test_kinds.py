"""The one table of biLM kinds (spacy_elmo/bilm/kinds.py): each kind recognises and loads its own saved
form only, training and the catalogue are keyed by it, and reading it loads no torch."""
import shutil
import subprocess
import sys

from conftest import FIXTURES, TRANSFORMER_ARCHIVE
from spacy_elmo.bilm.kinds import KINDS, LSTM, TRANSFORMER
from spacy_elmo.hub import MODELS
from spacy_elmo.training.kinds import KINDS as TRAINING_KINDS


def test_each_kind_holds_and_loads_only_its_own_saved_form(tmp_path):
    folder = tmp_path / "lstm"
    folder.mkdir()
    shutil.copy(FIXTURES / "options.json", folder / "options.json")
    shutil.copy(FIXTURES / "lm_weights.hdf5", folder / "weights.hdf5")
    for kind, saved in ((LSTM, folder), (TRANSFORMER, TRANSFORMER_ARCHIVE)):
        assert [other.name for other in KINDS.values() if other.holds(saved)] == [kind.name]
        bilm = kind.load(saved)
        assert bilm.options.kind == kind.name and not bilm.training
        assert kind.loadable(saved.parent if kind is TRANSFORMER else saved) == saved


def test_training_rows_and_catalogue_entries_name_a_kind_of_the_table():
    assert set(TRAINING_KINDS) == set(KINDS)
    assert all(row.bilm is KINDS[name] for name, row in TRAINING_KINDS.items())
    assert {model.kind.name for model in MODELS.values()} == set(KINDS)


def test_reading_the_tables_loads_no_torch():
    code = ("import sys, spacy_elmo.bilm.kinds, spacy_elmo.training.kinds, spacy_elmo.hub.catalogue; "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr
