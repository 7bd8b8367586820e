"""What a newcomer meets first (issue 17): a fast `--help`, tests that say in one line what they miss,
and a spaCy training run that cannot get its model stopping with one line and no empty output folder."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT


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


def test_without_the_shared_folder_the_tests_stop_with_one_line(tmp_path):
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT / "tests", copy / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy)
    env = {k: v for k, v in os.environ.items() if k != "SPACY_ELMO_SHARED"}
    result = subprocess.run([sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"], cwd=copy,
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 4 and result.stdout == "", result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Exit: spacy-elmo tests need the project's shared folder, not found at {tmp_path}")
    assert "fixtures/elmo-allennlp/lm_weights.hdf5" in lines[0] and "set SPACY_ELMO_SHARED" in lines[0]
