"""scripts/predict_test.py: per-Doc counts whose sums are the entity P/R/F and accuracy of `spacy evaluate`."""
import pytest
import spacy
from spacy.tokens import Doc, Span

from conftest import ROOT, load_module


@pytest.fixture(scope="module")
def predict_test():
    return load_module(ROOT / "scripts" / "predict_test.py")


def test_entity_counts_are_exact_span_matches(predict_test):
    vocab = spacy.blank("en").vocab
    words = ["Adele", "sang", "in", "New", "York", "today"]
    gold, predicted = Doc(vocab, words=words), Doc(vocab, words=words)
    gold.ents = [Span(gold, 0, 1, "person"), Span(gold, 3, 5, "location")]
    predicted.ents = [Span(predicted, 0, 1, "person"), Span(predicted, 3, 4, "location"), Span(predicted, 5, 6, "group")]
    assert predict_test.counts(gold, predicted) == {"tp": 1, "pred": 3, "gold": 2}
    empty = Doc(vocab, words=words, ents=["O"] * 6)
    assert predict_test.counts(empty, Doc(vocab, words=words)) == {"tp": 0, "pred": 0, "gold": 0}


def test_textcat_counts_whether_the_top_category_is_the_gold_one(predict_test):
    vocab = spacy.blank("en").vocab
    gold, predicted = Doc(vocab, words=["fine", "film"]), Doc(vocab, words=["fine", "film"])
    gold.cats = {"3": 1.0, "4": 0.0}
    predicted.cats = {"3": 0.3, "4": 0.7}
    assert predict_test.counts(gold, predicted) == {"correct": 0}
    predicted.cats = {"3": 0.6, "4": 0.4}
    assert predict_test.counts(gold, predicted) == {"correct": 1}
