import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = ROOT / "tests" / "data"          # everything the tests read: README.md there says what and whence
FIXTURES = TEST_DATA / "fixtures" / "elmo-allennlp"
TRANSFORMER_FIXTURES = TEST_DATA / "fixtures" / "transformer-elmo"
TRANSFORMER_ARCHIVE = TRANSFORMER_FIXTURES / "model.tar.gz"
SAMPLES = TEST_DATA / "samples"               # leading parts of the corpora, in the corpora's own layout
OUTSIDE_CHECKOUT = re.compile(r"\.\./shared|SPACY_ELMO_SHARED|/work/")   # what a fresh clone does not have


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """On a shared 2-core machine torch's OpenMP threads spin against other processes (100x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    """The official tiny model and its TensorFlow reference outputs."""
    return FIXTURES


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The corpus samples, laid out as the full corpora are (ud-english-ewt/, wnut17/, sst/, gutenberg-en/)."""
    return SAMPLES


def load_module(path: Path):
    """A script or a benchmark helper, which no package holds, as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def convert_sst():
    """scripts/convert_sst.py as a module (the project's SST-5 reader)."""
    return load_module(ROOT / "scripts" / "convert_sst.py")


@pytest.fixture
def text(tmp_path) -> Path:
    """A two-line text, input to the commands."""
    path = tmp_path / "in.txt"
    path.write_text("the cat sat .\na dog .\n", encoding="utf8")
    return path


@pytest.fixture
def bundle_at(monkeypatch):
    """Makes the catalogue's bundled model the one in a given folder, for this test."""
    import dataclasses

    from spacy_elmo.hub import DEFAULT_NAME, MODELS

    def move(folder: Path) -> None:
        monkeypatch.setitem(MODELS, DEFAULT_NAME, dataclasses.replace(MODELS[DEFAULT_NAME], folder=folder))

    return move


@pytest.fixture
def unpacked_archive(tmp_path) -> Path:
    """The transformer fixture as an unpacked AllenNLP archive folder."""
    import tarfile

    folder = tmp_path / "unpacked"
    with tarfile.open(TRANSFORMER_ARCHIVE) as tar:
        tar.extractall(folder, filter="data")
    return folder
