import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_ENV = "SPACY_ELMO_SHARED"
SHARED = Path(os.environ.get(SHARED_ENV, ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "elmo-allennlp"
NEEDED = ("fixtures/elmo-allennlp/lm_weights.hdf5", "fixtures/transformer-elmo/model.tar.gz",
          "data/ud-english-ewt", "data/wnut17", "data/gutenberg-en")


def missing_shared(shared: Path) -> str:
    """One line saying what is missing and how to get it, or "" when the shared folder is complete."""
    absent = [name for name in NEEDED if not (shared / name).exists()]
    if not absent:
        return ""
    where = f"{SHARED_ENV}={shared}" if SHARED_ENV in os.environ else f"{shared} (../shared beside the checkout)"
    return (f"spacy-elmo tests need the project's shared folder, not found at {where}: missing {', '.join(absent)}. "
            "It holds the reference fixtures (AllenNLP's tiny ELMo test model and TensorFlow outputs, a tiny "
            "Transformer-ELMo archive) and open data (UD English-EWT, WNUT-17, Gutenberg books); it is not in "
            f"git: copy the project's shared/ folder beside the checkout or set {SHARED_ENV} to where it is.")


def pytest_configure(config):
    """Stop before collecting anything when the shared folder is missing: one line, not hundreds of errors."""
    problem = missing_shared(SHARED)
    if problem:
        pytest.exit(problem, returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """On a shared 2-core machine torch's OpenMP threads spin against other processes (100x slower)."""
    import torch  # not at import: pytest_configure must be able to stop first, in a second

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
    return SHARED / "data"


@pytest.fixture(scope="session")
def convert_sst():
    """scripts/convert_sst.py as a module (the project's SST-5 reader)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("convert_sst", ROOT / "scripts" / "convert_sst.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
