"""What a newcomer meets first (issues 17, 24): a fast `--help`, tests that need nothing beside the checkout,
and a spaCy training run that cannot get its model stopping with one line and no empty output folder."""
import os
import re
import subprocess
import sys
import time

from conftest import FIXTURES, OUTSIDE_CHECKOUT, ROOT, SAMPLES, TEST_DATA, TRANSFORMER_ARCHIVE


def run(*command, **kwargs):
    return subprocess.run([*map(str, command)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **kwargs.pop("env", {})}, **kwargs)


def test_help_imports_neither_torch_nor_spacy():
    """torch and spaCy take most of a second each to import (7-10 s on a loaded machine): --help needs neither."""
    script = ("import runpy, sys; sys.argv = ['spacy_elmo', '--help']\n"
              "try:\n    runpy.run_module('spacy_elmo', run_name='__main__')\nexcept SystemExit:\n    pass\n"
              "print(sorted(m for m in ('torch', 'spacy', 'thinc', 'h5py') if m in sys.modules))")
    result = run(sys.executable, "-c", script)
    assert result.returncode == 0, result.stderr
    assert "Usage: python -m spacy_elmo" in result.stdout and result.stdout.strip().endswith("[]"), result.stdout
    start = time.perf_counter()
    assert run(sys.executable, "-m", "spacy_elmo", "--help").returncode == 0
    print(f"python -m spacy_elmo --help: {time.perf_counter() - start:.2f} s")


def test_the_suite_needs_nothing_outside_the_checkout():
    """A fresh clone runs its tests: the data they read is committed under tests/data (each part with its
    licence and provenance, under 5 MB), and no test reaches for a folder beside the checkout (the doc blocks:
    tests/docs/test_docs.py)."""
    for path in (FIXTURES / "lm_weights.hdf5", TRANSFORMER_ARCHIVE, SAMPLES / "ud-english-ewt"):
        assert path.exists() and TEST_DATA in path.parents, path
    files = [path for path in TEST_DATA.rglob("*") if path.is_file() and "__pycache__" not in path.parts]
    assert sum(path.stat().st_size for path in files) < 5_000_000
    for folder in [*(TEST_DATA / "fixtures").iterdir(), *(TEST_DATA / "samples").iterdir()]:
        assert {"LICENSE.txt", "README.md"} & {path.name for path in folder.iterdir()}, f"{folder}: no licence"
    tests = [path for path in ROOT.glob("tests/**/*.py") if path != ROOT / "tests" / "conftest.py"]
    assert not [str(path) for path in tests if OUTSIDE_CHECKOUT.search(path.read_text(encoding="utf8"))]


def test_quickstart_command_one_runs_again(tmp_path):
    """The README's first command, its embedding part as written, twice in one folder: the second run must
    not refuse the first run's vectors.hdf5."""
    readme = (ROOT / "README.md").read_text(encoding="utf8")
    command = re.search(r"```bash\n(.*?)\n```", readme.split("## Quickstart", 1)[1], re.S).group(1)
    embed = command.split(" && ", 1)[1]
    assert "embed" in embed and "vectors.hdf5" in embed
    for _ in range(2):
        result = run("bash", "-eo", "pipefail", "-c", embed, cwd=tmp_path, env={"PYTHONPATH": str(ROOT)})
        assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "vectors.hdf5").stat().st_size > 0


def test_spacy_train_that_cannot_get_its_model_stops_with_one_line(tmp_path):
    """The README's NER example with `name = "original"` offline: one `Error:` line, no traceback, and the
    output folder spaCy made for the run removed again (it is empty)."""
    from spacy.tokens import DocBin

    DocBin().to_disk(tmp_path / "empty.spacy")
    output = tmp_path / "training" / "ner"
    result = run(sys.executable, "-m", "spacy", "train", ROOT / "configs" / "elmo_ner.cfg", "--output", output,
                 "--paths.train", tmp_path / "empty.spacy", "--paths.dev", tmp_path / "empty.spacy",
                 "--components.elmo.model.name", "original",
                 env={"SPACY_ELMO_MIRROR": "http://127.0.0.1:9", "SPACY_ELMO_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 1, result.stderr[-3000:]
    shown = result.stdout + result.stderr
    errors = [line for line in shown.splitlines() if line.startswith("Error:")]
    assert "Traceback" not in shown and len(errors) == 1, shown[-3000:]
    assert errors[0].startswith("Error: cannot reach http://127.0.0.1:9/allennlp/models/elmo/2x4096_512_2048cnn_2xhighway")
    assert not (tmp_path / "training").exists()
