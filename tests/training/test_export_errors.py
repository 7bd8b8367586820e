"""Bad input and faults of `export` and `evaluate`, and the checksums exported weights carry.

Every case exits non-zero with one `Error:` line naming the file, option or value, never a traceback, and
loses or leaves nothing. Exit status 2 is click's for a bad flag value."""
import errno
import json

import h5py
import pytest

from cli_helpers import bad_flag, cli, fails, snapshot, temp_files
from spacy_elmo import load_lstm_bilm
from spacy_elmo.bilm.weights import _official_tensors
from spacy_elmo.errors import WeightsError
from spacy_elmo.training import vocab


# --- integrity: export checksums --------------------------------------------------------------

def test_exported_weights_carry_checksums_official_readers_ignore(corpus, tmp_path):
    """Root attributes only: the datasets are exactly the official ones, so AllenNLP/bilm-tf read it unchanged."""
    assert cli("export", corpus / "run", tmp_path / "export").exit_code == 0
    bilm = load_lstm_bilm(tmp_path / "export" / "options.json", tmp_path / "export" / "weights.hdf5")
    datasets, attributes = set(), []

    def visit(name, obj):
        attributes.extend(obj.attrs)
        if isinstance(obj, h5py.Dataset):
            datasets.add(name)

    with h5py.File(tmp_path / "export" / "weights.hdf5", "r") as f:
        assert sorted(f.attrs) == ["spacy_elmo_options_sha256", "spacy_elmo_weights_sha256"]
        f.visititems(visit)
    assert datasets == {name for name, _ in _official_tensors(bilm)} and attributes == []


def test_flipped_weight_is_a_checksum_error(corpus, tmp_path, text):
    assert cli("export", corpus / "run", tmp_path / "export").exit_code == 0
    with h5py.File(tmp_path / "export" / "weights.hdf5", "r+") as f:
        f["char_embed"][5, 0] += 1e-3
    fails(cli("embed", text, tmp_path / "out.hdf5", "--options-file", tmp_path / "export" / "options.json",
              "--weight-file", tmp_path / "export" / "weights.hdf5"),
          r"weights\.hdf5: checksum mismatch: the weights changed after they were written")


def test_weights_with_other_options_is_a_checksum_error(corpus, tmp_path):
    assert cli("export", corpus / "run", tmp_path / "export").exit_code == 0
    options = json.loads((tmp_path / "export" / "options.json").read_text())
    options["lstm"]["cell_clip"] = 5.0
    (tmp_path / "export" / "options.json").write_text(json.dumps(options))
    with pytest.raises(WeightsError, match="written with different options than the options file given"):
        load_lstm_bilm(tmp_path / "export" / "options.json", tmp_path / "export" / "weights.hdf5")


# --- export -----------------------------------------------------------------------------------

def test_export_refuses_an_existing_directory_without_overwrite(corpus, tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    fails(cli("export", corpus / "run", out), r"export already exists; choose another output or pass --overwrite")
    assert snapshot(tmp_path) == before
    assert cli("export", corpus / "run", out, "--overwrite").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["options.json", "vocab.txt", "weights.hdf5"]
    assert temp_files(tmp_path) == []


def test_an_lstm_run_is_not_exported_to_an_archive_name(corpus, tmp_path):
    """An LSTM export is a folder: asked for lstm.tar.gz, export used to make a folder of that name."""
    before = snapshot(tmp_path)
    fails(cli("export", corpus / "run", tmp_path / "lstm.tar.gz"),
          r"lstm\.tar\.gz: an LSTM run exports to a folder \(options\.json, weights\.hdf5, vocab\.txt\), not an archive")
    assert snapshot(tmp_path) == before


def test_export_into_the_run_directory_is_refused(corpus):
    before = snapshot(corpus)
    fails(cli("export", corpus / "run", corpus / "run", "--overwrite"), r"would overwrite the input")
    assert snapshot(corpus) == before


def test_export_of_a_corrupt_checkpoint(corpus, tmp_path):
    ckpt = corpus / "run" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:5000])
    fails(cli("export", corpus / "run", tmp_path / "export"), r"checkpoint\.pt: the file is truncated or corrupt")
    assert not (tmp_path / "export").exists() and temp_files(tmp_path) == []


def test_export_of_a_directory_without_a_run(tmp_path):
    (tmp_path / "empty").mkdir()
    fails(cli("export", tmp_path / "empty", tmp_path / "export"), r"no training checkpoint at .*checkpoint\.pt")
    assert not (tmp_path / "export").exists()


def test_export_failure_midway_leaves_no_directory(corpus, tmp_path, monkeypatch):
    def full(self, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(vocab.Vocab, "to_file", full)
    fails(cli("export", corpus / "run", tmp_path / "export"), r"vocab\.txt: No space left on device: the disk is full")
    assert not (tmp_path / "export").exists() and temp_files(tmp_path) == []

# --- evaluate ---------------------------------------------------------------------------------

def test_evaluate_errors(trained, tmp_path):
    bad_flag(cli("evaluate", trained / "run", trained / "heldout.txt", "--batch-size", "0"), "--batch-size", "0 is not")
    fails(cli("evaluate", tmp_path / "nothing", trained / "heldout.txt"), r"no training checkpoint at")
    fails(cli("evaluate", trained / "run", tmp_path / "missing.txt"), r"no text files found at .*missing\.txt")
    (tmp_path / "blank.txt").write_text(" \n\n")
    fails(cli("evaluate", trained / "run", tmp_path / "blank.txt"), r"blank\.txt: the file holds only whitespace")
