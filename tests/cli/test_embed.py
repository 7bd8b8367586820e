"""`python -m spacy_elmo embed`: the fixture protocol through the command, the file layout, and bad input."""
import json
import re
import shutil

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from spacy_elmo.cli.app import app


@pytest.fixture(scope="module")
def streams(fixture_dir):
    return json.loads((fixture_dir / "sentences.json").read_text())


@pytest.fixture
def model_args(fixture_dir):
    return ["--options-file", str(fixture_dir / "options.json"), "--weight-file", str(fixture_dir / "lm_weights.hdf5")]


def embed(*args, input=None):
    return CliRunner().invoke(app, ["embed", *map(str, args)], input=input)


def read(path):
    with h5py.File(path, "r") as f:
        index = json.loads(f["sentence_to_index"][0])
        return {name: f[name][()] for name in f if name != "sentence_to_index"}, index


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf8")
    return path


def test_stateful_command_reproduces_the_reference(fixture_dir, streams, model_args, tmp_path):
    """Stream-wise order [s0[0], s1[0], s2[0], s0[1], ...] in batches of 3 is the reference protocol."""
    lines = [streams[k][i] for i in range(10) for k in range(3)]
    source = write_lines(tmp_path / "in.txt", lines)
    result = embed(source, tmp_path / "out.hdf5", *model_args, "--stateful", "--batch-size", 3, "--layers", "top")
    assert result.exit_code == 0, result.output
    arrays, index = read(tmp_path / "out.hdf5")
    assert sorted(arrays, key=int) == [str(j) for j in range(30)]
    for j in range(30):
        i, k = divmod(j, 3)
        with h5py.File(fixture_dir / f"lm_embeddings_{k}.hdf5", "r") as f:
            halves = f[str(i)][()]
        expected = np.concatenate([halves[0], halves[1]], axis=-1)
        assert arrays[str(j)].dtype == np.float32
        np.testing.assert_allclose(arrays[str(j)], expected, atol=1e-6, rtol=0)
    assert index == {line.strip(): j for j, line in enumerate(lines)}


def test_layer_choices_and_blank_lines(streams, model_args, tmp_path):
    lines = [streams[0][0], "", streams[1][3], "  ", streams[2][5]]
    source = write_lines(tmp_path / "in.txt", lines)
    for layers in ("all", "average", "top"):
        assert embed(source, tmp_path / f"{layers}.hdf5", *model_args, "--layers", layers).exit_code == 0
    all_layers, index = read(tmp_path / "all.hdf5")
    average, _ = read(tmp_path / "average.hdf5")
    top, _ = read(tmp_path / "top.hdf5")
    for j, line in enumerate(lines):
        n = len(line.split())
        assert all_layers[str(j)].shape == (3, n, 32)
        assert average[str(j)].shape == top[str(j)].shape == (n, 32)
        np.testing.assert_allclose(average[str(j)], all_layers[str(j)].mean(axis=0), atol=1e-6)
        np.testing.assert_array_equal(top[str(j)], all_layers[str(j)][2])
    assert index[lines[4]] == 4 and index[""] == 3
    assert embed(write_lines(tmp_path / "one.txt", [lines[2]]), tmp_path / "one.hdf5", *model_args).exit_code == 0
    np.testing.assert_allclose(read(tmp_path / "one.hdf5")[0]["0"], all_layers["2"], atol=1e-5)


def test_stdin_input(streams, model_args, tmp_path):
    result = embed("-", tmp_path / "out.hdf5", *model_args, input=streams[0][0] + "\n" + streams[0][1] + "\n")
    assert result.exit_code == 0, result.output
    arrays, _ = read(tmp_path / "out.hdf5")
    assert arrays["1"].shape == (3, len(streams[0][1].split()), 32)


def test_default_model(fixture_dir, streams, tmp_path, bundle_at):
    source = write_lines(tmp_path / "in.txt", streams[0][:2])
    bundle_at(tmp_path / "none")
    result = embed(source, tmp_path / "out.hdf5")
    assert result.exit_code == 1 and "default ELMo model is not bundled" in result.output
    model_dir = tmp_path / "bundled"
    model_dir.mkdir()
    shutil.copy(fixture_dir / "options.json", model_dir / "options.json")
    shutil.copy(fixture_dir / "lm_weights.hdf5", model_dir / "weights.hdf5")
    bundle_at(model_dir)
    assert embed(source, tmp_path / "out.hdf5").exit_code == 0
    assert read(tmp_path / "out.hdf5")[0]["1"].shape == (3, len(streams[0][1].split()), 32)


@pytest.mark.parametrize("setup,message", [
    ("missing", "input file not found"),
    ("latin1", r"not UTF-8 text \(invalid byte at offset 6, line 2\)"),
    ("empty", "the input is empty"),
    ("unwritable", "cannot write the output file"),
    ("layers", r"Invalid value for '--layers': 'middle' is not one of all, top, average"),
    ("one model file", "pass both --options-file and --weight-file"),
    ("bad weights", "not a readable HDF5 weight file"),
])
def test_bad_input_is_a_clear_error(setup, message, fixture_dir, model_args, tmp_path):
    source, output, extra = tmp_path / "in.txt", tmp_path / "out.hdf5", []
    output.write_bytes(b"earlier results")
    source.write_text("a b\nc\n")
    if setup == "missing":
        source = tmp_path / "nope.txt"
    elif setup == "latin1":
        source.write_bytes("a b\nna\xefve\n".encode("latin-1"))
    elif setup == "empty":
        source.write_text("")
    elif setup == "unwritable":
        output = tmp_path / "no-such-dir" / "out.hdf5"
    elif setup == "layers":
        extra = ["--layers", "middle"]
    elif setup == "one model file":
        model_args = model_args[:2]
    elif setup == "bad weights":
        model_args = model_args[:3] + [str(fixture_dir / "sentences.json")]
    result = embed(source, output, *model_args, *extra, "--overwrite")
    assert result.exit_code == (2 if setup == "layers" else 1)  # 2: click's code for a bad flag value
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert re.search(message, result.output), result.output
    if output.parent.exists():
        assert output.read_bytes() == b"earlier results"
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.txt", "out.hdf5"])


def test_progress_counts_tokens_and_shows_no_rate_before_one_is_known(fixture_dir, tmp_path, capsys):
    """The bar moves once per written chunk (16 lines at batch size 1) by its tokens: every count it shows is
    a chunk boundary, so its rate (averaged since the start) is never made up from a burst of lines."""
    import time

    from spacy_elmo.embedder import Embedder
    from spacy_elmo.bilm.weights import load_lstm_bilm
    from spacy_elmo.cli.embed_file import embed_file

    class Slow(Embedder):
        def embed_batch(self, sentences):
            time.sleep(0.02)
            return super().embed_batch(sentences)

    lines = [" ".join(["word"] * (1 + i % 5)) for i in range(40)]
    source = write_lines(tmp_path / "in.txt", lines)
    embedder = Slow(load_lstm_bilm(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5"), batch_size=1)
    embed_file(embedder, source, tmp_path / "out.hdf5", progress=True)
    shown = [part for part in capsys.readouterr().err.split("\r") if "token" in part]
    counts = [float(n) for n in re.findall(r"\| ([\d.]+)/[\d.]+ \[", "".join(shown))]
    tokens = [len(line.split()) for line in lines]
    boundaries = {0, sum(tokens[:16]), sum(tokens[:32]), sum(tokens)}
    assert {float(n) for n in re.findall(r"\| [\d.]+/([\d.]+) \[", "".join(shown))} == {sum(tokens)}
    assert counts[0] == 0 and "?token/s" in shown[0] and set(counts) <= boundaries and counts[-1] == sum(tokens)


def test_help_says_what_each_precision_does_to_speed():
    """The measured figures (docs/speed.md) per kind of CPU, not a promise that a precision is faster."""
    result = CliRunner().invoke(app, ["embed", "--help"])
    text = " ".join(result.output.split())
    assert "AVX2 CPU: int8 1.64x / 1.44x (1 thread), 1.55x / 1.32x (2 threads), fp16 1.06-1.23x, bf16 slower" in text
    assert "AVX-512 CPU with bf16 (Zen 5, 1 thread): int8 1.47x / 1.26x, bf16 0.94x / 1.02x, fp16 0.99x / 0.93x" in text
