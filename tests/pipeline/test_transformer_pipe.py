"""Transformer ELMo in spaCy: the `elmo` component on an AllenNLP archive gives allennlp-models' reference
layers and travels inside the saved pipeline; a shipped config trains a tagger on it (listeners on either biLM:
test_listener.py)."""
import json
import shutil

import h5py
import numpy as np
import pytest
import spacy
from spacy.cli.train import train
from spacy.tokens import Doc

from conftest import TRANSFORMER_FIXTURES as TRANSFORMER

from .conftest import CONFIGS


@pytest.fixture(scope="module")
def archive():
    assert (TRANSFORMER / "model.tar.gz").is_file(), f"transformer fixture not found at {TRANSFORMER}"
    return TRANSFORMER / "model.tar.gz"


def elmo_nlp(archive, **model):
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"model": {"archive": str(archive), **model}})
    return nlp


def test_component_reproduces_the_reference_and_loads_without_the_archive(archive, tmp_path):
    batches = json.loads((TRANSFORMER / "sentences.json").read_text(encoding="utf8"))
    nlp = elmo_nlp(archive)
    nlp.initialize()
    copy = tmp_path / "model.tar.gz"
    shutil.copy(archive, copy)
    saved = elmo_nlp(copy)
    saved.initialize()
    saved.to_disk(tmp_path / "pipeline")
    copy.unlink()
    loaded = spacy.load(tmp_path / "pipeline")
    with h5py.File(TRANSFORMER / "reference.hdf5", "r") as reference:
        for i, batch in enumerate(batches):
            docs = [Doc(nlp.vocab, words=words) for words in batch]
            for j, (doc, again) in enumerate(zip(nlp.pipe(docs), loaded.pipe([Doc(loaded.vocab, words=w) for w in batch]))):
                expected = reference[f"{i}/{j}/layers"][()]
                assert doc._.elmo.shape == expected.shape == (3, len(batch[j]), 32)
                np.testing.assert_allclose(doc._.elmo, expected, atol=1e-5)
                np.testing.assert_array_equal(again._.elmo, doc._.elmo)
                np.testing.assert_allclose(doc[0].vector, expected[:, 0].mean(axis=0), atol=1e-5)


@pytest.mark.slow
def test_shipped_config_trains_a_tagger_on_the_transformer(archive, corpora, tmp_path):  # noqa: F811
    overrides = {"paths.train": str(corpora["ewt", "train"]), "paths.dev": str(corpora["ewt", "dev"]),
                 "components.elmo.model.archive": str(archive), "training.max_steps": 4,
                 "training.eval_frequency": 4, "training.batcher.size.start": 200}
    train(CONFIGS / "elmo_tagger_parser.cfg", tmp_path / "out", overrides=overrides)
    nlp = spacy.load(tmp_path / "out" / "model-last")
    doc = nlp("The cat sat on the mat .")
    assert doc._.elmo is None and nlp.get_pipe("elmo").store == "none", "listeners only: nothing kept"
    assert all(token.tag_ and token.dep_ for token in doc)
