"""Bad input and faults of `embed` and the loaders through the command line, in-process: every case exits
non-zero with one `Error:` line naming the file, option or value, never a traceback, and loses or leaves nothing.

Exit status 2 is click's for a bad flag value (rejected before any work); 1 for everything else.
Faults that need a real process (signals, a full disk, `spacy elmo`) are in test_faults.py; those of
the training commands in training/.
"""
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys

import pytest

from cli_helpers import bad_flag, cli, fails, snapshot, temp_files
from spacy_elmo.atomic import TMP_SUFFIX
from spacy_elmo.errors import OptionsError


@pytest.fixture
def model(fixture_dir):
    return ["--options-file", fixture_dir / "options.json", "--weight-file", fixture_dir / "lm_weights.hdf5"]


def options_with(fixture_dir, tmp_path, **lstm):
    data = json.loads((fixture_dir / "options.json").read_text())
    data["lstm"].update(lstm)
    path = tmp_path / "options.json"
    path.write_text(json.dumps(data))
    return path


# --- embed: flags --------------------------------------------------------------------------------

@pytest.mark.parametrize("flag,value,shown", [
    ("--batch-size", "0", "0 is not an integer >= 1"),
    ("--batch-size", "-3", "-3 is not an integer >= 1"),
    ("--batch-size", "abc", "should be a valid integer"),
    ("--layers", "middle", "'middle' is not one of all, top, average"),
])
def test_embed_bad_flag_values(flag, value, shown, text, model, tmp_path):
    before = snapshot(tmp_path)
    bad_flag(cli("embed", text, tmp_path / "out.hdf5", *model, flag, value), flag, shown)
    assert snapshot(tmp_path) == before


# --- embed: files --------------------------------------------------------------------------------

def test_embed_refuses_to_overwrite_its_input(text, model, tmp_path):
    before = snapshot(tmp_path)
    fails(cli("embed", text, text, *model), r"in\.txt would overwrite the input .*in\.txt")
    assert snapshot(tmp_path) == before


def test_embed_refuses_to_overwrite_the_weight_file(text, fixture_dir, tmp_path):
    weights = tmp_path / "weights.hdf5"
    shutil.copy(fixture_dir / "lm_weights.hdf5", weights)
    before = snapshot(tmp_path)
    fails(cli("embed", text, weights, "--options-file", fixture_dir / "options.json", "--weight-file", weights),
          "would overwrite the input")
    assert snapshot(tmp_path) == before


def test_embed_output_is_a_directory(text, model, tmp_path):
    (tmp_path / "out").mkdir()
    before = snapshot(tmp_path)
    fails(cli("embed", text, tmp_path / "out", *model), r"out is a directory; give a file name")
    assert snapshot(tmp_path) == before


def test_embed_input_is_a_directory(model, tmp_path):
    (tmp_path / "texts").mkdir()
    fails(cli("embed", tmp_path / "texts", tmp_path / "out.hdf5", *model), r"texts is a directory; expected a text file")
    assert not (tmp_path / "out.hdf5").exists()


def test_embed_missing_options_file(text, fixture_dir, tmp_path):
    fails(cli("embed", text, tmp_path / "out.hdf5", "--options-file", tmp_path / "nope.json",
              "--weight-file", fixture_dir / "lm_weights.hdf5"), r"options file not found: .*nope\.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


def test_embed_options_not_json(text, fixture_dir, tmp_path):
    bad = tmp_path / "options.json"
    bad.write_text("{lstm: 1")
    fails(cli("embed", text, tmp_path / "out.hdf5", "--options-file", bad, "--weight-file",
              fixture_dir / "lm_weights.hdf5"), r"options\.json: not a valid JSON options file")


@pytest.mark.parametrize("key,value,pattern", [
    ("cell_clip", float("nan"), r"lstm\.cell_clip must be a finite number or null, found nan"),
    ("proj_clip", float("inf"), r"lstm\.proj_clip must be a finite number or null, found inf"),
    ("cell_clip", -1.0, r"lstm\.cell_clip must be a finite number >= 0"),
    ("dim", 0, r"lstm_dim must be a positive integer, found 0"),
    ("n_layers", True, r"n_layers must be a positive integer, found True"),
])
def test_embed_invalid_options_values(key, value, pattern, text, fixture_dir, tmp_path):
    options = options_with(fixture_dir, tmp_path, **{key: value})
    fails(cli("embed", text, tmp_path / "out.hdf5", "--options-file", options, "--weight-file",
              fixture_dir / "lm_weights.hdf5"), pattern)
    assert not (tmp_path / "out.hdf5").exists()


def test_embed_options_too_big_for_memory_are_refused_before_allocation(text, fixture_dir, tmp_path):
    options = options_with(fixture_dir, tmp_path, dim=10**7, projection_dim=10**6)
    fails(cli("embed", text, tmp_path / "out.hdf5", "--options-file", options, "--weight-file",
              fixture_dir / "lm_weights.hdf5"), r"parameters \(\d[\d.]* GiB of float32\), more than this machine's")


def no_tensor_may_be_read(monkeypatch):
    """Fail the test if anything reads weights: the refusal must come from the sizes alone."""
    import spacy_elmo.bilm.archive
    import spacy_elmo.bilm.weights

    def forbidden(*args, **kwargs):
        raise AssertionError("weights were read before the sizes were checked")

    monkeypatch.setattr(spacy_elmo.bilm.archive, "_read_state", forbidden)
    monkeypatch.setattr(spacy_elmo.bilm.weights, "read_weights", forbidden)


@pytest.mark.parametrize("key,value,pattern", [
    ("hidden_dim", 2**31, r"biLM of [\d,]+ parameters \(\d+\.\d GiB of float32\), more than this machine's .* GiB of "
                          r"memory available now; check input_dim \(16\), hidden_dim \(2147483648\)"),
    ("num_layers", 10**6, r"option n_layers is 1,000,000, more than 64"),
])
def test_archive_config_sizes_are_checked_before_any_tensor(key, value, pattern, text, unpacked_archive, tmp_path,
                                                            monkeypatch):
    config_file = unpacked_archive / "config.json"
    config = json.loads(config_file.read_text())
    config["model"]["contextualizer"][key] = value
    config_file.write_text(json.dumps(config))
    no_tensor_may_be_read(monkeypatch)
    before = snapshot(tmp_path)
    fails(cli("embed", text, tmp_path / "out.hdf5", "--archive", unpacked_archive), rf"config\.json: .*{pattern}")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("lstm,pattern", [
    ({"n_layers": 10**6}, r"option n_layers is 1,000,000, more than 64"),
    ({"dim": 2**31, "projection_dim": 2**20}, r"more than this machine's .* GiB of memory available now"),
])
def test_lstm_options_sizes_are_checked_before_any_tensor(lstm, pattern, text, fixture_dir, tmp_path, monkeypatch):
    options = options_with(fixture_dir, tmp_path, **lstm)
    no_tensor_may_be_read(monkeypatch)
    fails(cli("embed", text, tmp_path / "out.hdf5", "--options-file", options, "--weight-file",
              fixture_dir / "lm_weights.hdf5"), pattern)
    assert not (tmp_path / "out.hdf5").exists()


def test_a_refused_pickle_gives_no_advice_to_unpickle_it(text, unpacked_archive, tmp_path, capfd):
    import torch

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled",))

    torch.save({"x": Evil()}, unpacked_archive / "weights.th")
    line = fails(cli("embed", text, tmp_path / "out.hdf5", "--archive", unpacked_archive),
                 r"weights\.th is not a torch state dict that loads with weights_only=True \(it holds a pickled "
                 r"(builtins\.)?print, not only tensors, and unpickling that could run code\)")
    assert "weights_only=False" not in line and "succeed" not in line
    assert "unpickled" not in capfd.readouterr().out


def test_embed_filters_that_are_not_pairs(text, fixture_dir, tmp_path):
    data = json.loads((fixture_dir / "options.json").read_text())
    data["char_cnn"]["filters"] = "abc"
    (tmp_path / "options.json").write_text(json.dumps(data))
    fails(cli("embed", text, tmp_path / "out.hdf5", "--options-file", tmp_path / "options.json", "--weight-file",
              fixture_dir / "lm_weights.hdf5"), r"char_cnn\.filters must be a list of \[width, count\] pairs")


def test_new_output_follows_the_umask(text, model, tmp_path):
    old = os.umask(0o027)
    try:
        assert cli("embed", text, tmp_path / "out.hdf5", *model).exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.hdf5").stat().st_mode) == 0o640


def test_replaced_output_keeps_its_mode(text, model, tmp_path):
    out = tmp_path / "out.hdf5"
    out.write_bytes(b"old")
    out.chmod(0o604)
    assert cli("embed", text, out, *model, "--overwrite").exit_code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o604 and out.read_bytes() != b"old"


def test_one_sentence_is_singular(model, tmp_path):
    (tmp_path / "one.txt").write_text("just one\n")
    result = cli("embed", tmp_path / "one.txt", tmp_path / "out.hdf5", *model)
    assert result.exit_code == 0 and "1 sentence -> " in result.stderr and "1 sentences" not in result.stderr


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temp_file_of_a_killed_run_is_removed(text, model, tmp_path, caplog):
    stale = tmp_path / f".out.hdf5.{_dead_pid()}.0badf00d{TMP_SUFFIX}"
    stale.write_bytes(b"\0" * 1000)
    assert cli("embed", text, tmp_path / "out.hdf5", *model).exit_code == 0
    assert not stale.exists() and temp_files(tmp_path) == []
    assert any("left behind by an interrupted run" in r.getMessage() for r in caplog.records)


def test_temp_file_of_a_live_writer_is_an_error(text, model, tmp_path):
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy = tmp_path / f".out.hdf5.{writer.pid}.0badf00d{TMP_SUFFIX}"
        busy.write_bytes(b"partial")
        fails(cli("embed", text, tmp_path / "out.hdf5", *model), rf"another process \(pid {writer.pid}\) is writing it")
        assert busy.read_bytes() == b"partial" and not (tmp_path / "out.hdf5").exists()
    finally:
        writer.kill()
        writer.wait()


# --- embed: faults inside the command ----------------------------------------------------------

def test_unexpected_error_is_one_line_that_points_to_the_debug_switch(text, model, tmp_path, monkeypatch):
    import spacy_elmo.cli.embed_file as embed_file

    def broken(*args, **kwargs):
        raise RuntimeError("something deep inside torch\nwith a second line")

    monkeypatch.setattr(embed_file, "read_lines", broken)
    fails(cli("embed", text, tmp_path / "out.hdf5", *model),
          r"unexpected RuntimeError: something deep inside torch with a second line; run again with SPACY_ELMO_DEBUG=1")


def test_debug_switch_shows_the_traceback(text, tmp_path, monkeypatch):
    monkeypatch.setenv("SPACY_ELMO_DEBUG", "1")
    result = cli("embed", text, tmp_path / "out.hdf5", "--options-file", tmp_path / "nope.json",
                 "--weight-file", tmp_path / "nope.hdf5")
    assert result.exit_code != 0 and isinstance(result.exception, OptionsError)


def test_out_of_memory_is_a_clear_error(text, model, tmp_path, monkeypatch):
    from spacy_elmo.embedder import Embedder

    def no_memory(self, sentences):
        raise MemoryError()

    monkeypatch.setattr(Embedder, "embed_batch", no_memory)
    fails(cli("embed", text, tmp_path / "out.hdf5", *model), r"out of memory; use a smaller --batch-size")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


def test_disk_full_while_writing_leaves_no_partial_file(text, model, tmp_path, monkeypatch):
    import spacy_elmo.cli.embed_file as embed_file

    def full(array, which):
        raise OSError(errno.ENOSPC, "No space left on device")

    (tmp_path / "out.hdf5").write_bytes(b"earlier results")
    monkeypatch.setattr(embed_file, "select_layers", full)
    fails(cli("embed", text, tmp_path / "out.hdf5", *model, "--overwrite"),
          r"out\.hdf5: No space left on device: the disk is full")
    assert (tmp_path / "out.hdf5").read_bytes() == b"earlier results" and temp_files(tmp_path) == []


def test_ctrl_c_mid_run_exits_130_and_leaves_nothing(text, model, tmp_path, monkeypatch):
    import spacy_elmo.cli.embed_file as embed_file

    def interrupted(array, which):
        raise KeyboardInterrupt

    monkeypatch.setattr(embed_file, "select_layers", interrupted)
    fails(cli("embed", text, tmp_path / "out.hdf5", *model), r"interrupted \(SIGINT\); no partial output", code=130)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


def test_a_swallowed_ctrl_c_is_still_honoured(text, model, tmp_path, monkeypatch):
    """Some library catches the KeyboardInterrupt: the signal was recorded, so nothing is committed."""
    import spacy_elmo.cli.embed_file as embed_file

    real, sent = embed_file.select_layers, []

    def swallowing(array, which):
        if not sent:
            sent.append(signal.SIGINT)
            try:
                signal.raise_signal(signal.SIGINT)
            except KeyboardInterrupt:
                pass
        return real(array, which)

    monkeypatch.setattr(embed_file, "select_layers", swallowing)
    fails(cli("embed", text, tmp_path / "out.hdf5", *model), r"interrupted \(SIGINT\)", code=130)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


def test_embed_refuses_a_hard_link_to_its_input(text, model, tmp_path):
    os.link(text, tmp_path / "link.txt")
    before = snapshot(tmp_path)
    fails(cli("embed", text, tmp_path / "link.txt", *model), r"link\.txt would overwrite the input")
    assert snapshot(tmp_path) == before
