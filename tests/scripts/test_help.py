"""Every script and benchmark starts and answers `--help`: a renamed module or function they import breaks
this test, not the next person who runs them (issue 24: the stage-3 step had crashed since a redesign)."""
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from cli_helpers import run
from conftest import ROOT

HELPERS = [ROOT / "benchmarks" / "common.py"]
"""Modules the benchmarks import, no programs: the precision tests import it (tests/bilm/test_precision.py)."""
PROGRAMS = sorted(set([*ROOT.glob("scripts/*.py"), *ROOT.glob("benchmarks/**/*.py")]) - set(HELPERS))


def help_of(path):
    return run("--help", program=[sys.executable, str(path)], cwd=ROOT)


@pytest.fixture(scope="module")
def answers():
    """All programs at once, two at a time: most benchmarks import torch before parsing their arguments."""
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(PROGRAMS, pool.map(help_of, PROGRAMS)))


def test_there_are_programs_to_check():
    assert ROOT / "scripts" / "train_stage3.py" in PROGRAMS and ROOT / "benchmarks" / "bench_bilm.py" in PROGRAMS
    assert all(path.is_file() for path in HELPERS)


@pytest.mark.parametrize("path", PROGRAMS, ids=[str(p.relative_to(ROOT)) for p in PROGRAMS])
def test_help(path, answers):
    result = answers[path]
    assert result.returncode == 0 and result.stdout.startswith("usage: "), result.stdout + result.stderr[-3000:]
