"""Fixtures shared by the spaCy component tests (imported by test_pipe, test_listener, test_spacy_train)."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """On a shared 2-core machine torch's OpenMP threads spin against other processes (100x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
