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


@pytest.fixture(scope="session")
def convert_sst():
    """scripts/convert_sst.py as a module (the project's SST-5 reader)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("convert_sst", ROOT / "scripts" / "convert_sst.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
