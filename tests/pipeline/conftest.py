"""Fixtures of the spaCy pipeline tests: small EWT and WNUT-17 training corpora."""
import re
from pathlib import Path

import pytest
from spacy.tokens import DocBin
from spacy.training.converters import conll_ner_to_docs, conllu_to_docs

from conftest import ROOT

CONFIGS = ROOT / "configs"


def sentences(text: str):
    """Blank-line separated blocks; lines holding only whitespace count as blank (WNUT-17 has lone TABs)."""
    text = re.sub(r"(?m)^[ \t]+$", "", text)
    return [block for block in text.split("\n\n") if block.strip()]


def write_docbin(docs, path: Path) -> Path:
    DocBin(docs=docs).to_disk(path)
    return path


@pytest.fixture(scope="module")
def corpora(data_dir, tmp_path_factory):
    """50 EWT training sentences and 20 dev ones; 60 and 20 WNUT-17 sentences (of the dev-file sample: the
    committed samples hold no tweets), converted as `spacy convert` does."""
    out = tmp_path_factory.mktemp("corpora")
    ewt = sentences((data_dir / "ud-english-ewt" / "en_ewt-ud-train.conllu").read_text(encoding="utf8"))
    wnut = sentences((data_dir / "wnut17" / "emerging.dev.conll").read_text(encoding="utf8"))
    paths = {}
    for name, blocks, convert in (("ewt", ewt, conllu_to_docs), ("wnut", wnut, conll_ner_to_docs)):
        train_end = 50 if name == "ewt" else 60
        for split, part in (("train", blocks[:train_end]), ("dev", blocks[train_end : train_end + 20])):
            docs = list(convert("\n\n".join(part) + "\n\n", n_sents=10, no_print=True))
            paths[name, split] = write_docbin(docs, out / f"{name}-{split}.spacy")
    return paths
