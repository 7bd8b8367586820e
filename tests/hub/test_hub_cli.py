"""Published models through the command line: `models`, `download`, `embed --model`, pretraining from a
published model, and every download error as one `Error:` line."""
import re

import pytest
import torch

from cli_helpers import cli, run
from spacy_elmo import load_lstm_bilm
from spacy_elmo.bilm.loading import load_any_bilm
from spacy_elmo.hub import fetch_model, resolve_model_files
from spacy_elmo.hub.catalogue import model_names

from .helpers import OPTIONS_PATH, WEIGHTS_PATH, ARCHIVE_PATH, TINY_CLI, cache_listing, one_error_line


def test_models_command_shows_what_is_cached(storage, tmp_path):
    before = cli("models")
    assert before.exit_code == 0
    rows = {line.split()[0]: line for line in before.stdout.splitlines()[1:]}
    assert set(rows) == set(model_names())
    assert re.search(r"^small\s+32\s+~54 MB\s+no\s", rows["small"])
    assert cli("download", "small", "--no-progress").exit_code == 0
    after = {line.split()[0]: line for line in cli("models").stdout.splitlines()[1:]}
    assert re.search(rf"^small\s+32\s+0 MB\s+{re.escape(str(tmp_path / 'cache' / 'small'))}", after["small"])


def test_embed_by_model_name(storage, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("a few words\n")
    result = cli("embed", source, tmp_path / "out.hdf5", "--model", "small", "--layers", "top")
    assert result.exit_code == 0, result.output
    import h5py

    with h5py.File(tmp_path / "out.hdf5", "r") as f:
        assert f["0"].shape == (3, 32)


@pytest.mark.parametrize("files", [["--archive", "some.tar.gz"], ["--options-file", "o.json", "--weight-file", "w.hdf5"]])
def test_embed_model_with_other_model_files_is_refused(files, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("a b\n")
    result = cli("embed", source, tmp_path / "out.hdf5", "--model", "small", *files)
    assert result.exit_code == 1 and not (tmp_path / "out.hdf5").exists()
    assert re.search("pass one of --archive, --model|pass a name or both files, not both",
                     one_error_line(result.stderr)), result.stderr


@pytest.mark.parametrize("setup,message", [
    ("unknown", "unknown ELMo model 'smal'; known models: default, small"),
    ("404", "HTTP error 404 Not Found for http://127.0.0.1"),
    ("no network", "cannot reach http://127.0.0.1:9/allennlp/models/elmo/.*SPACY_ELMO_MIRROR"),
    ("corrupt", "options.json of 'small' failed the options check and was removed"),
    ("unwritable", "cannot write to the model cache"),
])
def test_cli_errors_are_one_line(setup, message, storage, fixture_bytes, tmp_path, monkeypatch):
    args = ["download", "small", "--no-progress"]
    if setup == "unknown":
        args[1] = "smal"
    elif setup == "404":
        del storage.files[OPTIONS_PATH]
    elif setup == "no network":
        monkeypatch.setenv("SPACY_ELMO_MIRROR", "http://127.0.0.1:9")
    elif setup == "corrupt":
        storage.files[OPTIONS_PATH] = b"{not json"
    elif setup == "unwritable":
        (tmp_path / "a-file").write_text("")
        args += ["--dir", tmp_path / "a-file" / "cache"]
    result = cli(*args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert re.search(message, one_error_line(result.stderr)), result.stderr
    assert "manifest.json" not in cache_listing(tmp_path)


def test_disk_full_through_the_cli(storage, tmp_path):
    """RLIMIT_FSIZE makes writes past 300 kB fail with EFBIG, as a full disk fails them with ENOSPC."""
    result = run("download", "small", "--no-progress", program=TINY_CLI, limit_bytes=300_000)
    assert result.returncode == 1
    assert "disk full while writing" in one_error_line(result.stderr)
    assert cache_listing(tmp_path) == ["options.json", "weights.hdf5.part"]
    assert (tmp_path / "cache" / "small" / "weights.hdf5.part").stat().st_size == 300_000


@pytest.mark.slow
def test_download_through_python_m_and_spacy_elmo(storage, tmp_path):
    result = run("download", "small", program=TINY_CLI)
    assert result.returncode == 0, result.stderr
    directory = tmp_path / "cache" / "small"
    assert result.stdout.split() == ["small:", str(directory)]
    assert "100%" in result.stderr
    n_requests = len(storage.log)
    spacy_cli = run("spacy", "elmo", "download", "small", program=TINY_CLI)
    assert spacy_cli.returncode == 0 and spacy_cli.stdout == result.stdout, spacy_cli.stderr
    assert len(storage.log) == n_requests


def test_pretraining_can_start_from_a_published_model(storage, tmp_path):
    import torch

    from spacy_elmo.training.config import TrainConfig
    from spacy_elmo.training.models import initial_model
    from spacy_elmo.training.vocab import Vocab

    config = TrainConfig(train=[], vocab="unused", output=str(tmp_path / "run"), init_from="small")
    model = initial_model(config, Vocab(["<S>", "</S>", "<UNK>", "word"]))
    published = load_lstm_bilm(*resolve_model_files("small", progress=False)).state_dict()
    assert all(torch.equal(tensor, published[key]) for key, tensor in model.bilm.state_dict().items())
    assert len(storage.requests_for(WEIGHTS_PATH)) == 1


def test_pretrain_init_from_the_transformer_by_name(storage, archive_bytes, tmp_path):
    from spacy_elmo.training.config import TrainConfig
    from spacy_elmo.training.models import initial_model
    from spacy_elmo.training.vocab import Vocab

    config = TrainConfig(train=[], vocab="unused", output=str(tmp_path / "run"), init_from="transformer",
                         bilm="transformer")
    model = initial_model(config, Vocab(["<S>", "</S>", "<UNK>", "word"]))
    published = load_any_bilm(fetch_model("transformer", progress=False)).state_dict()
    assert all(torch.equal(tensor, published[key]) for key, tensor in model.bilm.state_dict().items())
    assert storage.requests_for(ARCHIVE_PATH) == [None]
