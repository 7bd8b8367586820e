"""Checks shared by the command-line tests: run a command (in-process or as a process), and assert that
it failed with exactly one `Error:` line and no traceback, and that it changed or left nothing."""
import hashlib
import os
import re
import resource
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from typer.testing import CliRunner

from spacy_elmo.atomic import TMP_SUFFIX
from spacy_elmo.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "spacy_elmo"]


def child_env() -> dict:
    """The environment of a command under test: this process's as it is now (a test may have set a variable),
    one torch thread, and the checkout importable."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def cli(*args, **kwargs):
    return CliRunner().invoke(app, [str(a) for a in args], **kwargs)


def run(*args, limit_bytes=None, cwd=None, env=None, program=CLI):
    """`python -m spacy_elmo ARGS` (or `program` ARGS) in a subprocess, optionally under a file size limit."""

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([*program, *map(str, args)], capture_output=True, text=True, env=env or child_env(),
                          cwd=cwd, preexec_fn=limit if limit_bytes else None, timeout=300)


def start(*args):
    return subprocess.Popen([*CLI, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env())


def wait_for(event: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Until `event()` holds (something the process under test did), failing after `timeout` seconds."""
    deadline = time.time() + timeout
    while not event():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


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


def one_error(stderr: str, pattern: str) -> None:
    """No traceback or 'Exception ignored' flood, and exactly one `Error:` line, matching `pattern`."""
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and re.search(pattern, errors[0]), stderr[-3000:]


def fails(result, pattern: str, code: int = 1) -> str:
    """An in-process command's exit `code`, no traceback, and exactly one `Error:` line, matching `pattern`."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    one_error(result.output, pattern)
    line = next(line for line in result.output.splitlines() if line.startswith("Error:"))
    if code == 1:
        assert result.stderr.strip().splitlines()[-1] == line, "the error is the last line on stderr"
    return line


def bad_flag(result, option: str, value: str) -> None:
    """Rejected by click before the command ran: the line names the option and the value."""
    line = fails(result, re.escape(f"'{option}'"), code=2)
    assert value in line, line
