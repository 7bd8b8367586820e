"""Every code block of README.md and docs/*.md, executed, so that the docs cannot drift from the code.

A fenced block is labelled with its language: `python` and `bash` blocks run, `text`, `ini` and `json`
blocks (output, configs) are only shown, but `ini` blocks must build in spaCy. A block that must not run has, on the line before its fence,
`<!-- doc-test: skip (REASON) -->`.

Each page runs in a fresh copy of the repository (tracked and untracked, not ignored files), with nothing
beside it: a block that needs a corpus reads the committed samples (tests/data/samples) or the project's
assets. Its blocks run in page order (files one block writes are there for the next):
a bash block with `bash -eo pipefail`, each python block in a fresh namespace (consecutive python blocks
share one interpreter), with this Python's `bin/` first on PATH. Two pages run at a time
(SPACY_ELMO_DOC_TEST_JOBS), the longest first. What differs from a user's machine:
- no block downloads: SPACY_ELMO_MIRROR points at a local server that holds, under every published model's
  address, the tiny test models of tests/data/fixtures (the AllenNLP test biLM, or the Transformer-ELMo
  test archive), a sitecustomize resizes the catalogue's entries to them (tests/tiny_catalogue.py; a
  download is checked against the published sizes), and SPACY_ELMO_CACHE is a fresh folder;
- PIP_DRY_RUN=1, so that the Quickstart's `pip install` resolves and builds the package without replacing
  the environment that runs the tests (.ci/run installs for real, into a fresh one); with
  PIP_NO_BUILD_ISOLATION=0 (which turns isolation off), since a dry run would not install the build
  requirements into the isolated environment: this environment's setuptools builds the package;
- OMP_NUM_THREADS=1, to leave the cores to other work.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import List, Optional
from urllib.parse import urlsplit

import pytest

from conftest import FIXTURES, OUTSIDE_CHECKOUT, ROOT, TRANSFORMER_ARCHIVE
from spacy_elmo.bilm.kinds import LSTM, TRANSFORMER

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = {"python", "bash"}
SHOW = {"text", "ini", "json"}
SKIP = re.compile(r"<!-- doc-test: skip \((?P<reason>[^)]+)\) -->")
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>\S*)[ \t]*$")
BLOCK_TIMEOUT_S = 1800   # generous: on this shared machine a niced block can wait 10-30x its CPU time
DOC_TEST_JOBS = int(os.environ.get("SPACY_ELMO_DOC_TEST_JOBS", "2"))   # pages run at the same time
README_MAX_BYTES = 15 * 1024


@dataclass
class Block:
    page: str     # path relative to the repository
    line: int     # line of the opening fence, 1-based
    lang: str
    code: str
    skip: Optional[str]

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def blocks_of(path: Path) -> List[Block]:
    lines = path.read_text(encoding="utf8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        assert end is not None, f"{path.name}:{i + 1}: a code block is never closed"
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        skip = SKIP.fullmatch(before.strip())
        blocks.append(Block(str(path.relative_to(ROOT)), i + 1, fence["lang"], "\n".join(lines[i + 1:end]) + "\n",
                            skip["reason"] if skip else None))
        if fence["indent"]:
            blocks[-1].lang = "indented"
        i = end + 1
    return blocks


def all_blocks() -> List[Block]:
    return [block for page in PAGES for block in blocks_of(page)]


def test_every_block_is_labelled_and_every_skip_has_a_reason():
    blocks = all_blocks()
    assert blocks, "no code blocks found"
    bad = [f"{b.where}: ```{b.lang}" for b in blocks if b.lang not in RUN | SHOW]
    assert not bad, ("label every block (python or bash to run it; text, ini or json to show it), with its "
                     f"fence at the start of a line: {bad}")
    assert not [b.where for b in blocks if b.skip and b.lang not in RUN], "a skip marker before a shown block"
    for page in PAGES:
        lines = page.read_text(encoding="utf8").splitlines()
        markers = sum(1 for line in lines if line.strip().startswith("<!-- doc-test"))
        marked = sum(1 for b in blocks_of(page) if b.skip)
        assert markers == marked, f"{page.name}: a doc-test marker that is not on the line before a fence"


def test_ci_runs_the_readme_test_command_verbatim():
    readme = [b for b in blocks_of(ROOT / "README.md") if b.lang == "bash"]
    assert len(readme) == 2, "the Quickstart has exactly two commands: the main job, then the tests"
    command = readme[1].code.strip()
    assert "pytest" in command and "\n" not in command
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf8").splitlines()


def test_no_block_reaches_outside_the_checkout():
    """Blocks run in a copy of the repository with nothing beside it, as on a fresh clone."""
    assert not [b.where for b in all_blocks() if b.lang in RUN and not b.skip and OUTSIDE_CHECKOUT.search(b.code)]


def test_readme_is_short_and_keeps_the_results_markers():
    readme = (ROOT / "README.md").read_text(encoding="utf8")
    assert len(readme.encode("utf8")) <= README_MAX_BYTES
    assert readme.count("<!-- results:start -->") == 1 and readme.count("<!-- results:end -->") == 1


def test_relative_links_point_at_files():
    missing = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (page.parent / target.split("#", 1)[0]).exists():
                missing.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not missing, missing


def test_readme_quickstart_snippet_runs():
    """The README's spaCy snippet as a user pastes it, and its comment's token index points at "bank"."""
    readme = (ROOT / "README.md").read_text(encoding="utf8")
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    snippets = re.findall(r"```python\n(.*?)```", quickstart, re.S)
    scope: dict = {}
    for snippet in snippets:
        exec(compile(snippet, "README.md", "exec"), scope)
    snippet = snippets[0]
    index = int(re.search(r'doc\[(\d+)\]\.vector .*"bank"', snippet).group(1))
    assert scope["doc"][index].text == "bank"


FIXTURE_FILES = {LSTM.name: [FIXTURES / "options.json", FIXTURES / "lm_weights.hdf5"],
                 TRANSFORMER.name: [TRANSFORMER_ARCHIVE]}
"""The tiny test model of each biLM kind, file for file."""


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """A local web server holding the tiny test models under every published model's address."""
    from spacy_elmo.hub import MODELS

    root = tmp_path_factory.mktemp("mirror")
    for model in MODELS.values():
        sources = FIXTURE_FILES[model.kind.name]
        for remote, source in zip(model.remotes, sources):
            target = root / urlsplit(remote.url).path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def copy_repository(target: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True)
    if listed.returncode == 0:
        for name in filter(None, listed.stdout.split("\0")):
            source = ROOT / name
            if source.is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)
    else:
        shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(".git", ".venv*", "__pycache__", "runs",
                                                                    "training*", "corpus", "packages"))


PYTHON_RUNNER = r"""
import json, sys, traceback
for block in json.load(sys.stdin):
    try:
        exec(compile("\n" * block["line"] + block["code"], block["page"], "exec"), {"__name__": "__main__"})
    except BaseException:
        traceback.print_exc()
        sys.exit(f"doc-test: the python block at {block['page']}:{block['line']} failed")
"""


def run_blocks(blocks: List[Block], cwd: Path, env: dict) -> Optional[str]:
    """None, or what went wrong."""
    if blocks[0].lang == "python":
        command = [sys.executable, "-c", PYTHON_RUNNER]
        payload = json.dumps([{"page": b.page, "line": b.line, "code": b.code} for b in blocks])
    else:
        (block,) = blocks
        trap = f"trap 'echo \"doc-test: the bash block at {block.where} failed at line $LINENO\" >&2' ERR"
        command, payload = ["bash", "-eo", "pipefail", "-c", trap + "\n" * block.line + block.code], None
    try:
        done = subprocess.run(command, input=payload, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired as timeout:
        output = (timeout.stdout or b"")[-3000:] + (timeout.stderr or b"")[-3000:]
        return f"{blocks[0].where} ran for more than {BLOCK_TIMEOUT_S} s:\n{output.decode(errors='replace')}"
    if done.returncode != 0:
        return f"{blocks[0].where} exited with {done.returncode}:\n{(done.stdout + done.stderr)[-6000:]}"
    return None


def groups(blocks: List[Block]) -> List[List[Block]]:
    """Blocks to run, in page order: runs of consecutive python blocks together, each bash block alone."""
    out: List[List[Block]] = []
    for block in blocks:
        if block.lang not in RUN or block.skip:
            continue
        if out and block.lang == "python" and out[-1][0].lang == "python":
            out[-1].append(block)
        else:
            out.append([block])
    return out


SITECUSTOMIZE = f"""import sys
sys.path.insert(0, {str(ROOT / "tests")!r})
import tiny_catalogue
tiny_catalogue.install()
"""


def run_page(page: Path, tmp_path: Path, mirror: str) -> Optional[str]:
    repo = tmp_path / "spacy-elmo"
    copy_repository(repo)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf8")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "site"), os.environ.get("PYTHONPATH")])),
           "SPACY_ELMO_MIRROR": mirror, "SPACY_ELMO_CACHE": str(tmp_path / "cache"), "PIP_DRY_RUN": "1",
           "PIP_NO_BUILD_ISOLATION": "0", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    for group in groups(blocks_of(page)):
        error = run_blocks(group, repo, env)
        if error:
            return error
    return None


def cost(page: Path) -> int:
    """Lines of code to run: the longest pages start first."""
    return sum(len(b.code.splitlines()) for group in groups(blocks_of(page)) for b in group)


RUNNABLE = [page for page in PAGES if groups(blocks_of(page))]


@pytest.fixture(scope="module")
def page_runs(request, mirror, tmp_path_factory):
    """The selected pages, run DOC_TEST_JOBS at a time (each page's blocks in order, one after another)."""
    pages = {item.callspec.params["page"] for item in request.session.items
             if getattr(item, "originalname", None) == "test_page_runs"}
    pool = ThreadPoolExecutor(DOC_TEST_JOBS)
    futures = {page: pool.submit(run_page, page, tmp_path_factory.mktemp(page.stem), mirror)
               for page in sorted(pages, key=cost, reverse=True)}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE, ids=[str(p.relative_to(ROOT)) for p in RUNNABLE])
def test_page_runs(page, page_runs):
    error = page_runs[page].result()
    if error:
        pytest.fail(error, pytrace=False)


def architectures(node: dict):
    """The topmost sections of a config tree that name an architecture."""
    if "@architectures" in node:
        yield node
        return
    for value in node.values():
        if isinstance(value, dict):
            yield from architectures(value)


def test_ini_blocks_are_configs_that_spacy_accepts():
    """Shown configs are not run, but their sections must build: no renamed setting, no stale default."""
    import spacy
    from spacy import registry
    from thinc.api import Config

    for block in (b for b in all_blocks() if b.lang == "ini"):
        sections = re.findall(r"^\[([^\]]+)\]", block.code, re.M)
        parents = {".".join(s.split(".")[:i]) for s in sections for i in range(1, s.count(".") + 1)}
        config = Config().from_str("".join(f"[{p}]\n" for p in sorted(parents - set(sections))) + block.code,
                                   interpolate=False)
        for section in config["components"].values():
            if "factory" in section:
                spacy.blank("en").add_pipe(section["factory"],
                                           config={k: v for k, v in section.items() if k != "factory"})
            else:
                for tree in architectures(section):
                    registry.resolve({"model": tree}, validate=True)
