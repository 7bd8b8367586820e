"""A saved pipeline whose biLM file is damaged: spacy.load names the file and what is wrong."""
import os
import re

import pytest
import spacy

from spacy_elmo.errors import WeightsError


@pytest.mark.parametrize("damage", ["truncated", "empty", "missing", "garbage", "flipped"])
def test_spacy_load_of_a_damaged_pipeline_names_the_file(damage, fixture_dir, tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"model": {"options_file": str(fixture_dir / "options.json"),
                                           "weight_file": str(fixture_dir / "lm_weights.hdf5")}})
    nlp.initialize()
    nlp.to_disk(tmp_path / "pipeline")
    model = tmp_path / "pipeline" / "elmo" / "model"
    data = model.read_bytes()
    if damage == "missing":
        model.unlink()
    else:
        flipped = bytearray(data)
        flipped[-2000] ^= 0xFF
        model.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "garbage": os.urandom(len(data)),
                           "flipped": bytes(flipped)}[damage])
    pattern = {"missing": "missing; the saved pipeline is incomplete", "flipped": "checksum mismatch"}
    with pytest.raises(WeightsError, match=re.escape(str(model)) + ": " + pattern.get(damage, "not a readable")):
        spacy.load(tmp_path / "pipeline")
