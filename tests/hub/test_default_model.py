"""The English biLM shipped inside the package: found and loaded with no download."""
from spacy_elmo import Embedder
from spacy_elmo.hub import resolve_model_files


def test_embedder_on_the_bundled_model_as_documented():
    embedder = Embedder.from_files(*resolve_model_files())
    assert embedder.embed_sentence(["The", "bank", "."]).shape == (3, 3, embedder.output_dim)
