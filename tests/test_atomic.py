"""One output guard for every command (issue 17): an output may never be, hold, or lie inside an input,
a cached published model or the bundled model, compared as real paths, hard links included; and `embed`
refuses an existing output unless --overwrite, as `export` and `pretrain` do. Every refusal is one
`Error:` line with nothing written (a snapshot of the whole folder before and after)."""
import os
import shutil

import h5py
import pytest

from cli_helpers import cli, fails, snapshot


@pytest.fixture
def export_dir(fixture_dir, tmp_path):
    """An LSTM model in the `export` layout (options.json + weights.hdf5)."""
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copy(fixture_dir / "options.json", folder / "options.json")
    shutil.copy(fixture_dir / "lm_weights.hdf5", folder / "weights.hdf5")
    return folder


def refused(result, tmp_path, before, pattern="would overwrite"):
    fails(result, pattern)
    assert snapshot(tmp_path) == before


def test_embed_into_a_file_inside_the_archive_folder_is_refused(text, unpacked_archive, tmp_path):
    before = snapshot(tmp_path)
    refused(cli("embed", text, unpacked_archive / "weights.th", "--archive", unpacked_archive), tmp_path, before,
            r"output file .*unpacked/weights\.th would overwrite the input .*unpacked; choose another output file")
    refused(cli("embed", text, unpacked_archive / "vocabulary" / "new.hdf5", "--archive", unpacked_archive), tmp_path,
            before)


def test_embed_into_the_weights_of_an_export_folder_is_refused(text, export_dir, tmp_path):
    before = snapshot(tmp_path)
    refused(cli("embed", text, export_dir / "weights.hdf5", "--archive", export_dir), tmp_path, before)


def test_symlinks_and_dot_dot_are_resolved(text, export_dir, tmp_path):
    (tmp_path / "link").symlink_to(export_dir / "weights.hdf5")
    (tmp_path / "linked-dir").symlink_to(export_dir)
    before = snapshot(tmp_path)
    for output in (tmp_path / "link", tmp_path / "linked-dir" / "weights.hdf5",
                   tmp_path / "export" / ".." / "export" / "weights.hdf5"):
        refused(cli("embed", text, output, "--archive", tmp_path / "linked-dir", "--overwrite"), tmp_path, before)


def test_a_hard_link_to_a_file_of_a_folder_input_is_refused(text, export_dir, tmp_path):
    os.link(export_dir / "weights.hdf5", tmp_path / "vectors.hdf5")
    before = snapshot(tmp_path)
    refused(cli("embed", text, tmp_path / "vectors.hdf5", "--archive", export_dir, "--overwrite"), tmp_path, before)
    os.link(text, tmp_path / "text-too.txt")
    refused(cli("embed", text, tmp_path / "text-too.txt", "--archive", export_dir, "--overwrite"), tmp_path,
            snapshot(tmp_path))


def test_nothing_is_written_into_the_bundled_model(text, tmp_path, bundle_at):
    from spacy_elmo.hub.catalogue import BUNDLED_DIR

    bundled = tmp_path / "bundled"
    shutil.copytree(BUNDLED_DIR, bundled)
    bundle_at(bundled)
    before = snapshot(tmp_path)
    refused(cli("embed", text, bundled / "weights.hdf5", "--overwrite"), tmp_path, before,
            "would overwrite the model folder .*bundled")


def test_prepare_and_vocab_never_write_inside_a_folder_input(tmp_path):
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("One sentence here. Another one.\n", encoding="utf8")
    before = snapshot(tmp_path)
    refused(cli("prepare", texts, "-o", texts / "shards", "--n-shards", 1), tmp_path, before,
            r"--output .*texts/shards would overwrite the input .*texts")
    refused(cli("vocab", texts, "-o", texts / "vocab.txt", "--format", "raw"), tmp_path, before)


def test_embed_refuses_an_existing_output_without_overwrite(text, fixture_dir, tmp_path):
    model = ["--options-file", fixture_dir / "options.json", "--weight-file", fixture_dir / "lm_weights.hdf5"]
    out = tmp_path / "out.hdf5"
    out.write_bytes(b"precious")
    before = snapshot(tmp_path)
    refused(cli("embed", text, out, *model), tmp_path, before,
            r"the output file .*out\.hdf5 already exists; choose another output file or pass --overwrite")
    result = cli("embed", text, out, *model, "--overwrite")
    assert result.exit_code == 0, result.output
    with h5py.File(out, "r") as f:
        assert f["1"].shape == (3, 3, 32)


def test_embed_help_states_the_overwrite_rule():
    result = cli("embed", "--help")
    text = " ".join(result.output.split())
    assert result.exit_code == 0 and "--overwrite / --no-overwrite Replace an existing output file (default: refuse" in text
