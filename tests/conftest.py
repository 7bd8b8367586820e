import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SPACY_ELMO_SHARED", ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "elmo-allennlp"


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    """The official tiny model and its TensorFlow reference outputs; their absence is a failure, not a skip."""
    assert (FIXTURES / "lm_weights.hdf5").is_file(), f"reference fixtures not found at {FIXTURES}"
    return FIXTURES


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = SHARED / "data"
    assert path.is_dir(), f"shared data not found at {path}"
    return path


@pytest.fixture(scope="session")
def convert_sst():
    """scripts/convert_sst.py as a module (the project's SST-5 reader)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("convert_sst", ROOT / "scripts" / "convert_sst.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
