"""Bad input and faults through the command line, in-process: every case exits non-zero with one
`Error:` line naming the file, option or value, never a traceback, and loses or leaves nothing.

Exit status 2 is click's for a bad flag value (rejected before any work); 1 for everything else.
Faults that need a real process (signals, a full disk, `spacy elmo`) are in test_faults.py.
"""
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from typer.testing import CliRunner

from spacy_elmo.atomic import TMP_SUFFIX
from spacy_elmo.cli.app import app
from spacy_elmo.errors import InputError, OptionsError, WeightsError
from test_trainer import make_corpus

TINY = ["--lstm-dim", "16", "--projection-dim", "8", "--filters", "1:4,2:4", "--char-dim", "4", "--batch-size", "4",
        "--unroll-steps", "5", "--n-negative-samples", "8", "--log-every", "1", "--threads", "1"]


def cli(*args, **kwargs):
    return CliRunner().invoke(app, [str(a) for a in args], **kwargs)


def snapshot(root: Path) -> dict:
    """Every path below root with its mode and a hash of its content: what 'nothing changed' compares."""
    found = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        mode = stat.S_IMODE(path.stat().st_mode)
        found[key] = (mode, "dir") if path.is_dir() else (mode, hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def temp_files(root: Path) -> list:
    return sorted(p.name for p in root.rglob(f"*{TMP_SUFFIX}"))


def fails(result, pattern: str, code: int = 1) -> str:
    """Exit `code`, no traceback, and exactly one `Error:` line, matching `pattern`."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert re.search(pattern, errors[0]), errors[0]
    if code == 1:
        assert result.stderr.strip().splitlines()[-1] == errors[0], "the error is the last line on stderr"
    return errors[0]


def bad_flag(result, option: str, value: str) -> None:
    """Rejected by click before the command ran: the line names the option and the value."""
    line = fails(result, re.escape(f"'{option}'"), code=2)
    assert value in line, line


@pytest.fixture
def model(fixture_dir):
    return ["--options-file", fixture_dir / "options.json", "--weight-file", fixture_dir / "lm_weights.hdf5"]


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("the cat sat .\na dog .\n", encoding="utf8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A corpus, its vocabulary and a 2-step tiny run; tests copy the whole tree before changing it."""
    root = make_corpus(tmp_path_factory.mktemp("trained"))
    result = cli("pretrain", root / "train", "--vocab", root / "vocab.txt", "-o", root / "run", *TINY, "--max-steps", 2)
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def corpus(trained, tmp_path):
    """A private copy of the trained tree (also a relocated run: its paths must resolve in the copy)."""
    return Path(shutil.copytree(trained, tmp_path / "tree"))


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


@pytest.fixture
def unpacked_archive(tmp_path):
    import tarfile

    from conftest import SHARED

    folder = tmp_path / "unpacked"
    with tarfile.open(SHARED / "fixtures" / "transformer-elmo" / "model.tar.gz") as tar:
        tar.extractall(folder, filter="data")
    return folder


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
    from spacy_elmo.bilm.embedder import Embedder

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


# --- integrity: export checksums --------------------------------------------------------------

def test_exported_weights_carry_checksums_official_readers_ignore(corpus, tmp_path):
    """Root attributes only: the datasets are exactly the official ones, so AllenNLP/bilm-tf read it unchanged."""
    from spacy_elmo import load_bilm
    from spacy_elmo.bilm.weights import _official_tensors

    assert cli("export", corpus / "run", tmp_path / "export").exit_code == 0
    bilm = load_bilm(tmp_path / "export" / "options.json", tmp_path / "export" / "weights.hdf5")
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
    from spacy_elmo import load_bilm

    with pytest.raises(WeightsError, match="written with different options than the options file given"):
        load_bilm(tmp_path / "export" / "options.json", tmp_path / "export" / "weights.hdf5")


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
    from spacy_elmo.training import vocab

    def full(self, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(vocab.Vocab, "to_file", full)
    fails(cli("export", corpus / "run", tmp_path / "export"), r"vocab\.txt: No space left on device: the disk is full")
    assert not (tmp_path / "export").exists() and temp_files(tmp_path) == []


# --- prepare and vocab ------------------------------------------------------------------------

@pytest.mark.parametrize("args,flag,shown", [
    (["--n-shards", "0"], "--n-shards", "0 is not an integer >= 1"),
    (["--n-process", "0"], "--n-process", "0 is not an integer >= 1"),
    (["--format", "pdf"], "--format", "'pdf' is not one of raw, lines, tokens"),
    (["--seed", "-1"], "--seed", "-1 is not an integer >= 0"),
])
def test_prepare_bad_flag_values(args, flag, shown, text, tmp_path):
    before = snapshot(tmp_path)
    bad_flag(cli("prepare", text, "-o", tmp_path / "shards", *args), flag, shown)
    assert snapshot(tmp_path) == before


def test_prepare_refuses_to_write_over_its_input(tmp_path):
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("The cat sat. The dog ran.\n")
    before = snapshot(tmp_path)
    fails(cli("prepare", texts, "-o", texts, "--overwrite"), r"--output .*texts would overwrite the input")
    assert snapshot(tmp_path) == before


def test_prepare_existing_output_needs_overwrite_and_is_replaced_whole(tmp_path):
    (tmp_path / "a.txt").write_text(" ".join(["The cat sat on the mat."] * 40) + "\n")
    assert cli("prepare", tmp_path / "a.txt", "-o", tmp_path / "shards", "--n-shards", "3").exit_code == 0
    before = snapshot(tmp_path)
    fails(cli("prepare", tmp_path / "a.txt", "-o", tmp_path / "shards", "--n-shards", "2"),
          r"the --output .*shards already exists; choose another --output or pass --overwrite")
    assert snapshot(tmp_path) == before
    assert cli("prepare", tmp_path / "a.txt", "-o", tmp_path / "shards", "--n-shards", "2", "--overwrite").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["shard-00000.txt", "shard-00001.txt"]
    assert temp_files(tmp_path) == []


def test_prepare_failure_midway_leaves_no_shards(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text(" ".join(["The cat sat on the mat."] * 40) + "\n")
    real, calls = Path.write_text, []

    def second_fails(self, *args, **kwargs):
        calls.append(self)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", second_fails)
    fails(cli("prepare", tmp_path / "a.txt", "-o", tmp_path / "shards", "--n-shards", "3"), r"the disk is full")
    assert not (tmp_path / "shards").exists() and temp_files(tmp_path) == []


@pytest.mark.parametrize("content,pattern", [
    (b"", r"the file is empty"),
    (b"abc\x00def", r"looks like a binary file"),
    (b"caf\xe9 au lait\n", r"not valid UTF-8 \(bad byte at offset 3\)"),
])
def test_prepare_bad_text(content, pattern, tmp_path):
    (tmp_path / "bad.txt").write_bytes(content)
    fails(cli("prepare", tmp_path / "bad.txt", "-o", tmp_path / "shards"), r"bad\.txt: " + pattern)
    assert not (tmp_path / "shards").exists()


def test_prepare_missing_input_and_unknown_language(text, tmp_path):
    fails(cli("prepare", tmp_path / "nope", "-o", tmp_path / "shards"), r"no text files found at .*nope")
    fails(cli("prepare", text, "-o", tmp_path / "shards", "--lang", "xx-not-a-language"), r"no spaCy language 'xx-not")
    assert not (tmp_path / "shards").exists()


def test_vocab_bad_flags_and_overwriting_an_input(text, tmp_path):
    bad_flag(cli("vocab", text, "-o", tmp_path / "v.txt", "--max-size", "3"), "--max-size", "3 is not an integer >= 4")
    bad_flag(cli("vocab", text, "-o", tmp_path / "v.txt", "--min-count", "0"), "--min-count", "0 is not")
    before = snapshot(tmp_path)
    fails(cli("vocab", text, "-o", text), r"would overwrite the input")
    assert snapshot(tmp_path) == before


def test_vocab_replaces_a_file_whole_keeping_its_mode(text, tmp_path):
    out = tmp_path / "vocab.txt"
    out.write_text("old\n")
    out.chmod(0o600)
    assert cli("vocab", text, "-o", out).exit_code == 0
    assert out.read_text().split("\n")[:3] == ["<S>", "</S>", "<UNK>"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and temp_files(tmp_path) == []


# --- pretrain: flags --------------------------------------------------------------------------

@pytest.mark.parametrize("flag,value,shown", [
    ("--batch-size", "0", "0 is not an integer >= 1"),
    ("--filters", "abc", "'abc' is not a width:count pair"),
    ("--filters", "1:32,2:0", "'2:0' is not a width:count pair"),
    ("--learning-rate", "nan", "nan is not a finite number in (0, inf]"),
    ("--learning-rate", "-0.1", "-0.1 is not a finite number"),
    ("--clip-norm", "inf", "inf is not a finite number"),
    ("--dropout", "1", "1.0 is not a finite number in [0, 1)"),
    ("--max-minutes", "nan", "nan is not a finite number"),
    ("--optimizer", "sgd", "'sgd' is not one of adagrad, adam"),
    ("--unroll-steps", "0", "0 is not an integer >= 1"),
    ("--lstm-dim", "x", "should be a valid integer"),
])
def test_pretrain_bad_flag_values(flag, value, shown, trained, tmp_path):
    bad_flag(cli("pretrain", trained / "train", "--vocab", trained / "vocab.txt", "-o", tmp_path / "run", flag, value),
             flag, shown)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args,pattern", [
    (["--projection-dim", "32"], r"projection_dim \(32\) must not exceed lstm\.dim \(16\)"),
    (["--lstm-dim", "4000000", "--projection-dim", "1000000"], r"more than this machine's .* of memory"),
    (["--filters", "60:4"], r"char_cnn\.filters has an invalid pair \[60, 4\]"),
])
def test_pretrain_impossible_architecture_is_refused_before_reading(args, pattern, tmp_path):
    """The text and vocabulary do not even exist: the architecture is refused first."""
    fails(cli("pretrain", tmp_path / "nope", "--vocab", tmp_path / "nope.txt", "-o", tmp_path / "run", *TINY, *args),
          r"training setting: .*" + pattern)
    assert sorted(tmp_path.iterdir()) == []


def test_pretrain_needs_text_and_vocab_unless_resuming(tmp_path):
    fails(cli("pretrain", "-o", tmp_path / "run"), r"training text and --vocab are required unless --resume", code=2)


def test_pretrain_resume_and_overwrite_together(trained, tmp_path):
    fails(cli("pretrain", "-o", trained / "run", "--resume", "--overwrite"), r"pass one", code=2)


# --- pretrain: run directories ----------------------------------------------------------------

def test_existing_run_is_not_overwritten_without_a_flag(corpus):
    before = snapshot(corpus)
    fails(cli("pretrain", corpus / "train", "--vocab", corpus / "vocab.txt", "-o", corpus / "run", *TINY),
          r"run already holds a run; continue it with --resume, replace it with --overwrite")
    assert snapshot(corpus) == before


def test_overwrite_replaces_a_run_as_a_whole(corpus):
    result = cli("pretrain", corpus / "train", "--vocab", corpus / "vocab.txt", "-o", corpus / "run", *TINY,
                 "--max-steps", "1", "--overwrite")
    assert result.exit_code == 0, result.output
    log = [json.loads(line) for line in (corpus / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1], "one run per log: the old records are gone"
    assert temp_files(corpus) == []


def test_a_directory_that_is_not_a_run_is_never_replaced(trained, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    before = snapshot(tmp_path)
    fails(cli("pretrain", trained / "train", "--vocab", trained / "vocab.txt", "-o", mine, *TINY, "--overwrite"),
          r"mine exists and is not a spacy-elmo run directory")
    assert snapshot(tmp_path) == before


def test_output_holding_the_training_text_is_refused(corpus):
    before = snapshot(corpus)
    fails(cli("pretrain", corpus / "train", "--vocab", corpus / "vocab.txt", "-o", corpus, *TINY),
          r"exists and is not a spacy-elmo run directory")
    (corpus / "train" / "log.jsonl").write_text("")
    fails(cli("pretrain", corpus / "train", "--vocab", corpus / "vocab.txt", "-o", corpus / "train", *TINY,
              "--overwrite"), r"would overwrite the input")
    assert snapshot(corpus) == {**before, "train/log.jsonl": snapshot(corpus)["train/log.jsonl"]}


def test_failed_new_run_leaves_no_directory(trained, tmp_path):
    tiny = make_corpus(tmp_path / "tiny", n_sentences=3, n_shards=1)
    fails(cli("pretrain", tiny / "train", "--vocab", tiny / "vocab.txt", "-o", tmp_path / "run", *TINY,
              "--batch-size", "64"), r"one batch needs")
    assert not (tmp_path / "run").exists() and temp_files(tmp_path) == []


def test_missing_vocabulary_leaves_no_directory(trained, tmp_path):
    fails(cli("pretrain", trained / "train", "--vocab", tmp_path / "nope.txt", "-o", tmp_path / "run", *TINY),
          r"vocabulary file not found: .*nope\.txt")
    assert not (tmp_path / "run").exists()


def test_init_from_a_garbage_checkpoint(trained, tmp_path):
    (tmp_path / "garbage.pt").write_bytes(os.urandom(3000))
    fails(cli("pretrain", trained / "train", "--vocab", trained / "vocab.txt", "-o", tmp_path / "run", *TINY,
              "--init-from", tmp_path / "garbage.pt"), r"garbage\.pt: the file is truncated or corrupt")
    assert not (tmp_path / "run").exists()


# --- pretrain: resume -------------------------------------------------------------------------

def test_resume_without_a_checkpoint(tmp_path):
    fails(cli("pretrain", "-o", tmp_path / "run", "--resume"), r"no training checkpoint at .*run; pass a run directory")
    assert not (tmp_path / "run").exists()


def test_resume_with_other_settings_is_refused_listing_them(corpus):
    before = snapshot(corpus)
    line = fails(cli("pretrain", "-o", corpus / "run", "--resume", "--lstm-dim", "32", "--learning-rate", "0.5",
                     "--max-steps", "4"), r"--resume: these settings differ from the run in")
    assert "lstm_dim: run 16, given 32" in line and "learning_rate: run 0.2, given 0.5" in line
    assert "max_steps" not in line, "a resumed run may change how long it runs"
    assert snapshot(corpus) == before


def test_resume_with_another_vocabulary_is_refused(corpus):
    (corpus / "other.txt").write_text("<S>\n</S>\n<UNK>\nzebra\n")
    before = snapshot(corpus)
    fails(cli("pretrain", "-o", corpus / "run", "--resume", "--vocab", corpus / "other.txt"), r"vocab: run '.*vocab\.txt'")
    assert snapshot(corpus) == before


def test_resume_accepts_the_same_vocabulary_elsewhere(corpus):
    shutil.copy(corpus / "vocab.txt", corpus / "copy.txt")
    result = cli("pretrain", "-o", corpus / "run", "--resume", "--vocab", corpus / "copy.txt", "--max-steps", "3")
    assert result.exit_code == 0, result.output


def test_resume_of_a_copied_run_writes_only_the_copy(corpus):
    shutil.copytree(corpus / "run", corpus / "copy")
    original = snapshot(corpus / "run")
    result = cli("pretrain", "-o", corpus / "copy", "--resume", "--max-steps", "3")
    assert result.exit_code == 0, result.output
    assert snapshot(corpus / "run") == original
    from spacy_elmo.training.trainer import load_checkpoint

    assert load_checkpoint(corpus / "copy")["step"] == 3 and load_checkpoint(corpus / "run")["step"] == 2


def test_moved_run_tree_resumes_from_relative_paths(tmp_path):
    """Trained in one place, moved as a whole: the old absolute paths are gone, the relative ones work."""
    root = make_corpus(tmp_path / "here")
    assert cli("pretrain", root / "train", "--vocab", root / "vocab.txt", "-o", root / "run", *TINY,
               "--max-steps", "1").exit_code == 0
    moved = Path(shutil.move(str(root), str(tmp_path / "there")))
    result = cli("pretrain", "-o", moved / "run", "--resume", "--max-steps", "2")
    assert result.exit_code == 0, result.output
    assert not root.exists() and json.loads((moved / "run" / "log.jsonl").read_text().splitlines()[-1])["step"] == 2


@pytest.mark.parametrize("damage,pattern", [
    (lambda data: b"", r"checkpoint\.pt: the checkpoint is empty \(0 bytes\)"),
    (lambda data: data[: len(data) // 2], r"checkpoint\.pt: the file is truncated or corrupt"),
    (lambda data: os.urandom(len(data)), r"checkpoint\.pt: the file is truncated or corrupt"),
])
def test_resume_from_a_damaged_checkpoint(damage, pattern, corpus):
    ckpt = corpus / "run" / "checkpoint.pt"
    ckpt.write_bytes(damage(ckpt.read_bytes()))
    before = snapshot(corpus)
    fails(cli("pretrain", "-o", corpus / "run", "--resume", "--max-steps", "3"), pattern)
    assert snapshot(corpus) == before


def test_a_torn_last_log_line_is_tolerated_and_repaired(corpus):
    log = corpus / "run" / "log.jsonl"
    log.write_text(log.read_text() + '{"step": 3, "tokens": 40, "lo')
    result = cli("pretrain", "-o", corpus / "run", "--resume", "--max-steps", "4")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3, 4]


def test_a_torn_log_line_before_the_end_is_named(corpus):
    log = corpus / "run" / "log.jsonl"
    lines = log.read_text().splitlines()
    log.write_text(lines[0][:10] + "\n" + "\n".join(lines[1:]) + "\n")
    before = snapshot(corpus)
    fails(cli("pretrain", "-o", corpus / "run", "--resume", "--max-steps", "3"),
          r"log\.jsonl: line 1 is not a JSON record; delete or repair that line")
    assert snapshot(corpus) == before


def test_resume_after_a_shard_was_deleted(corpus):
    (corpus / "train" / "shard-1.txt").unlink()
    fails(cli("pretrain", "-o", corpus / "run", "--resume", "--max-steps", "3"),
          r"not among the 1 training files now found; resume with the run's training files")


def test_log_records_after_the_checkpoint_are_dropped_on_resume(corpus):
    """A crash after logging step 3 but before checkpointing it: step 3 is trained again, logged once."""
    log = corpus / "run" / "log.jsonl"
    log.write_text(log.read_text() + json.dumps({"step": 3, "tokens": 60, "loss": 9.0}) + "\n")
    assert cli("pretrain", "-o", corpus / "run", "--resume", "--max-steps", "3").exit_code == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3] and records[-1]["loss"] != 9.0


def test_checkpoint_options_are_checked_before_the_model_is_built(corpus, tmp_path):
    import torch

    ckpt_file = corpus / "run" / "checkpoint.pt"
    ckpt = torch.load(ckpt_file, weights_only=False)
    ckpt["options"]["lstm"]["n_layers"] = 10**6
    torch.save(ckpt, ckpt_file)
    before = snapshot(corpus)
    fails(cli("evaluate", corpus / "run", corpus / "heldout.txt"), r"option n_layers is 1,000,000, more than 64")
    fails(cli("export", corpus / "run", tmp_path / "export"), r"option n_layers is 1,000,000, more than 64")
    assert snapshot(corpus) == before and not (tmp_path / "export").exists()


# --- evaluate ---------------------------------------------------------------------------------

def test_evaluate_errors(trained, tmp_path):
    bad_flag(cli("evaluate", trained / "run", trained / "heldout.txt", "--batch-size", "0"), "--batch-size", "0 is not")
    fails(cli("evaluate", tmp_path / "nothing", trained / "heldout.txt"), r"no training checkpoint at")
    fails(cli("evaluate", trained / "run", tmp_path / "missing.txt"), r"no text files found at .*missing\.txt")
    (tmp_path / "short.txt").write_text("the cat .\n")
    fails(cli("evaluate", trained / "run", tmp_path / "short.txt"), r"held-out text .* is smaller than one batch")


# --- the Python API ---------------------------------------------------------------------------

def test_train_config_rejects_non_finite_values(trained):
    from test_trainer import tiny_config

    for bad in ({"learning_rate": float("nan")}, {"clip_norm": 0.0}, {"dropout": 1.0}, {"batch_size": 0},
                {"optimizer": "sgd"}, {"max_minutes": float("inf")}):
        with pytest.raises(InputError, match="training setting|unknown optimizer"):
            tiny_config(trained, **bad)


def test_resume_from_python_refuses_other_settings(corpus):
    from dataclasses import replace

    from spacy_elmo.training.trainer import load_checkpoint, run_config, train

    config = run_config(load_checkpoint(corpus / "run"), corpus / "run")
    with pytest.raises(InputError, match="n_layers: run 2, given 1"):
        train(replace(config, n_layers=1, max_steps=3), resume=True)


def test_embedder_on_the_bundled_model_as_documented():
    from spacy_elmo import Embedder
    from spacy_elmo.hub.default_model import default_model_files

    embedder = Embedder.from_files(*default_model_files())
    assert embedder.embed_sentence(["The", "bank", "."]).shape == (3, 3, embedder.output_dim)


@pytest.mark.parametrize("damage", ["truncated", "empty", "missing", "garbage", "flipped"])
def test_spacy_load_of_a_damaged_pipeline_names_the_file(damage, fixture_dir, tmp_path):
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"model": {"options_file": str(fixture_dir / "options.json"),
                                           "weight_file": str(fixture_dir / "lm_weights.hdf5")}})
    nlp.initialize()
    nlp.to_disk(tmp_path / "pipeline")
    model = tmp_path / "pipeline" / "elmo" / "model"
    data = model.read_bytes()
    if damage == "missing":
        model.unlink()
    else:
        flipped = bytearray(data)
        flipped[-2000] ^= 0xFF
        model.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "garbage": os.urandom(len(data)),
                           "flipped": bytes(flipped)}[damage])
    pattern = {"missing": "missing; the saved pipeline is incomplete", "flipped": "checksum mismatch"}
    with pytest.raises(WeightsError, match=re.escape(str(model)) + ": " + pattern.get(damage, "not a readable")):
        spacy.load(tmp_path / "pipeline")


def test_readme_quickstart_snippet_runs():
    """The spaCy Quickstart block of the README, as a new user would paste it."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf8")
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    snippets = re.findall(r"```python\n(.*?)```", quickstart, re.S)
    scope: dict = {}
    for snippet in snippets:
        exec(compile(snippet, "README.md", "exec"), scope)
    snippet = snippets[0]
    index = int(re.search(r'doc\[(\d+)\]\.vector .*"bank"', snippet).group(1))
    assert scope["doc"][index].text == "bank"


def test_spacy_elmo_app_rejects_bad_flags_the_same_way(trained, tmp_path):
    """`spacy elmo ...` runs the same commands inside spaCy's typer app."""
    import spacy_elmo.cli.spacy_cli  # noqa: F401  (what spaCy's setup_cli loads through the entry point)
    from spacy.cli._util import app as spacy_app

    result = CliRunner().invoke(spacy_app, ["elmo", "pretrain", str(trained / "train"), "--vocab",
                                            str(trained / "vocab.txt"), "-o", str(tmp_path / "run"),
                                            "--learning-rate", "nan"])
    bad_flag(result, "--learning-rate", "nan is not a finite number")
    result = CliRunner().invoke(spacy_app, ["elmo", "export", str(tmp_path / "no-run"), str(tmp_path / "out")])
    fails(result, r"no training checkpoint at .*no-run")
    assert sorted(tmp_path.iterdir()) == []


def test_embed_refuses_a_hard_link_to_its_input(text, model, tmp_path):
    os.link(text, tmp_path / "link.txt")
    before = snapshot(tmp_path)
    fails(cli("embed", text, tmp_path / "link.txt", *model), r"link\.txt would overwrite the input")
    assert snapshot(tmp_path) == before


def test_an_empty_output_directory_is_used(tmp_path):
    (tmp_path / "a.txt").write_text(" ".join(["The cat sat on the mat."] * 10) + "\n")
    (tmp_path / "shards").mkdir()
    assert cli("prepare", tmp_path / "a.txt", "-o", tmp_path / "shards", "--n-shards", "2").exit_code == 0
    assert len(list((tmp_path / "shards").iterdir())) == 2
