"""The Transformer-ELMo archive by name: downloaded, checked, resumed, refused when corrupt, and equal to
the archive it came from through the component and `embed`."""
import hashlib
import json
import re

import pytest

from cli_helpers import cli
from spacy_elmo import Embedder
from spacy_elmo.errors import DownloadError, WeightsError
from spacy_elmo.hub import MODELS, fetch_model, resolve_model_files

from .helpers import ARCHIVE_PATH, TRANSFORMER, cache_listing


def test_transformer_archive_is_downloaded_checked_and_cached(storage, archive_bytes, tmp_path):
    archive = fetch_model("transformer", progress=False)
    assert archive == tmp_path / "cache" / "transformer" / "model.tar.gz"
    assert archive.read_bytes() == archive_bytes
    assert cache_listing(tmp_path, "transformer") == ["manifest.json", "model.tar.gz"]
    manifest = json.loads((archive.parent / "manifest.json").read_text())
    assert manifest["files"]["model.tar.gz"] == {"url": MODELS["transformer"].remotes[0].url, "size": len(archive_bytes),
                                                 "sha256": hashlib.sha256(archive_bytes).hexdigest(),
                                                 "mtime_ns": archive.stat().st_mtime_ns,
                                                 "ctime_ns": archive.stat().st_ctime_ns, "ino": archive.stat().st_ino}
    assert storage.requests_for(ARCHIVE_PATH) == [None]
    n_requests = len(storage.log)
    assert fetch_model("transformer", progress=False) == archive
    embedder = Embedder.from_pretrained("transformer")
    assert (embedder.bilm.options.kind, embedder.bilm.n_output_layers, embedder.output_dim) == ("transformer", 3, 32)
    assert len(storage.log) == n_requests
    with pytest.raises(WeightsError, match="'transformer' is a Transformer-ELMo model archive, not the options.json "
                                           r"\+ weights.hdf5 pair asked for here"):
        resolve_model_files("transformer")


def test_transformer_download_resumes_after_a_dropped_connection(storage, archive_bytes):
    storage.cut_after[ARCHIVE_PATH] = 100_000
    assert fetch_model("transformer", progress=False).read_bytes() == archive_bytes
    first, resumed = storage.requests_for(ARCHIVE_PATH)
    assert first is None and 0 < int(re.fullmatch(r"bytes=(\d+)-", resumed).group(1)) <= 100_000


@pytest.mark.parametrize("damage,message", [
    ("truncated", "unreadable model archive"),
    ("an HTML page", "not a model archive"),
    ("no weights.th", "no file weights.th in the archive"),
])
def test_a_corrupt_transformer_archive_is_removed_and_never_cached(damage, message, storage, archive_bytes, tmp_path):
    import io
    import tarfile

    if damage == "truncated":
        storage.files[ARCHIVE_PATH] = archive_bytes[: len(archive_bytes) // 2]
    elif damage == "an HTML page":
        storage.files[ARCHIVE_PATH] = b"<html><body>Access denied by the proxy</body></html>\n" * 100
    else:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=io.BytesIO(archive_bytes)) as source, tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for member in source:
                if not member.name.endswith("weights.th"):
                    tar.addfile(member, source.extractfile(member) if member.isfile() else None)
        storage.files[ARCHIVE_PATH] = buffer.getvalue()
    with pytest.raises(DownloadError, match=f"'transformer' failed the model archive check and was removed.*{message}"):
        fetch_model("transformer", progress=False)
    assert cache_listing(tmp_path, "transformer") == []
    storage.files[ARCHIVE_PATH] = archive_bytes
    assert fetch_model("transformer", progress=False).read_bytes() == archive_bytes


def test_an_archive_put_in_the_cache_by_hand_is_checked_and_used(archive_bytes, tmp_path, monkeypatch, tiny_catalogue):
    monkeypatch.setenv("SPACY_ELMO_MIRROR", "http://127.0.0.1:9")
    (tmp_path / "transformer").mkdir()
    (tmp_path / "transformer" / "model.tar.gz").write_bytes(archive_bytes)
    assert fetch_model("transformer", cache_dir=tmp_path, progress=False) == tmp_path / "transformer" / "model.tar.gz"
    assert (tmp_path / "transformer" / "manifest.json").is_file()


def test_elmo_component_by_name_transformer_equals_the_archive(storage, tmp_path):
    import numpy as np
    import spacy
    from spacy.tokens import Doc

    sentences = [["The", "cat", "sat", "on", "the", "mat", "."], ["Hello", "world"]]
    outputs = []
    for model in ({"name": "transformer"}, {"archive": str(TRANSFORMER / "model.tar.gz")}):
        nlp = spacy.blank("en")
        nlp.add_pipe("elmo", config={"model": model})
        nlp.initialize()
        outputs.append([doc._.elmo for doc in nlp.pipe(Doc(nlp.vocab, words=words) for words in sentences)])
    assert storage.requests_for(ARCHIVE_PATH) == [None]
    for by_name, by_archive, words in zip(*outputs, sentences):
        assert by_name.shape == (3, len(words), 32)
        np.testing.assert_array_equal(by_name, by_archive)


def test_embed_by_model_name_transformer_reproduces_the_reference(storage, tmp_path):
    import h5py
    import numpy as np

    batch = json.loads((TRANSFORMER / "sentences.json").read_text(encoding="utf8"))[0]
    source = tmp_path / "in.txt"
    source.write_text("".join(" ".join(words) + "\n" for words in batch))
    result = cli("embed", source, tmp_path / "out.hdf5", "--model", "transformer", "--layers", "all")
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "out.hdf5", "r") as out, h5py.File(TRANSFORMER / "reference.hdf5", "r") as reference:
        assert len(out.keys()) - ("sentence_to_index" in out) == len(batch)
        for j in range(len(batch)):
            np.testing.assert_allclose(out[str(j)][()], reference[f"0/{j}/layers"][()], atol=1e-5)


def test_models_and_download_commands_show_the_transformer(storage, archive_bytes, tmp_path):
    rows = {line.split()[0]: line for line in cli("models").stdout.splitlines()[1:]}
    assert re.search(r"^transformer\s+32\s+\?\s+no\s+Transformer ELMo", rows["transformer"])
    result = cli("download", "transformer", "--no-progress")
    assert result.exit_code == 0, result.output
    archive = tmp_path / "cache" / "transformer" / "model.tar.gz"
    assert result.stdout.split() == ["transformer:", str(archive)]
    rows = {line.split()[0]: line for line in cli("models").stdout.splitlines()[1:]}
    size = f"{len(archive_bytes) / 1e6:.0f} MB"
    assert re.search(rf"^transformer\s+32\s+{size}\s+{re.escape(str(archive.parent))}\s", rows["transformer"])
