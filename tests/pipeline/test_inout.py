"""ELMo at a BiLSTM encoder's input and output (spacy-elmo.ElmoInOutTok2Vec.v1), in a textcat."""
import numpy
import pytest
import spacy
from spacy.training import Example
from thinc.api import Adam

WIDTH = 24
TEXTS = [("a fine , moving film", "POS"), ("dull and far too long", "NEG"), ("I loved every minute", "POS"),
         ("a tedious mess", "NEG")]


def elmo_block(dropout):
    return {"@architectures": "spacy-elmo.ElmoListener.v1", "width": None, "upstream": "elmo", "dropout": dropout,
            "project": False, "mix": {"@architectures": "spacy-elmo.ScalarMix.v1"}}


def build(fixture_dir, output_dropout=0.0):
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"store": "layers", "model": {"options_file": str(fixture_dir / "options.json"),
                                                              "weight_file": str(fixture_dir / "lm_weights.hdf5")}})
    tok2vec = {"@architectures": "spacy-elmo.ElmoInOutTok2Vec.v1", "width": WIDTH,
               "elmo": elmo_block(0.1), "elmo_output": elmo_block(output_dropout),
               "embed": {"@architectures": "spacy.MultiHashEmbed.v2", "width": WIDTH, "attrs": ["NORM", "SHAPE"],
                         "rows": [500, 100], "include_static_vectors": False},
               "encode": {"@architectures": "spacy.TorchBiLSTMEncoder.v1", "width": WIDTH, "depth": 1, "dropout": 0.0}}
    nlp.add_pipe("textcat", config={"model": {"@architectures": "spacy.TextCatReduce.v1", "tok2vec": tok2vec,
                                              "exclusive_classes": True, "use_reduce_first": False,
                                              "use_reduce_last": False, "use_reduce_max": True,
                                              "use_reduce_mean": True}})
    return nlp


def examples(nlp):
    return [Example.from_dict(nlp.make_doc(text), {"cats": {"POS": label == "POS", "NEG": label == "NEG"}})
            for text, label in TEXTS]


def tok2vec_of(nlp):
    return nlp.get_pipe("textcat").model.get_ref("tok2vec")


def test_output_is_the_encoder_then_the_output_mix(fixture_dir):
    """The last columns are the output listener's own scalar mix of the biLM layers, token by token:
    ELMo reaches the output without passing through the encoder."""
    nlp = build(fixture_dir)
    nlp.initialize(lambda: examples(nlp))
    tok2vec = tok2vec_of(nlp)
    docs = list(nlp.pipe([text for text, _ in TEXTS], disable=["textcat"]))
    found = tok2vec.predict(docs)
    n_bilm = docs[0]._.elmo.shape[2]
    torch_mix = tok2vec.get_ref("elmo_output").layers[1].shims[0].module
    torch_mix.weights.data[:] = torch_mix.weights.data.new_tensor([2.0, -1.0, 0.5])
    torch_mix.gamma.data[:] = 1.5
    again = tok2vec.predict(docs)
    softmax = numpy.exp([2.0, -1.0, 0.5]) / numpy.exp([2.0, -1.0, 0.5]).sum()
    for doc, before, after in zip(docs, found, again):
        assert after.shape == (len(doc), WIDTH + n_bilm) and tok2vec.get_dim("nO") == WIDTH + n_bilm
        expected = 1.5 * numpy.einsum("l,ltd->td", softmax, doc._.elmo)
        numpy.testing.assert_allclose(after[:, WIDTH:], expected, rtol=1e-5, atol=1e-5)
        numpy.testing.assert_array_equal(after[:, :WIDTH], before[:, :WIDTH])


def test_training_updates_both_mixes_and_learns(fixture_dir):
    nlp = build(fixture_dir, output_dropout=0.1)
    nlp.initialize(lambda: examples(nlp))
    tok2vec = tok2vec_of(nlp)
    mixes = [tok2vec.get_ref(name).layers[1].shims[0].module for name in ("elmo", "elmo_output")]
    start = [mix.weights.detach().clone() for mix in mixes]
    optimizer = Adam(0.01)
    losses = [nlp.update(examples(nlp), sgd=optimizer)["textcat"] for _ in range(25)]
    assert losses[-1] < 0.3 * losses[0], losses
    for mix, before in zip(mixes, start):
        assert not numpy.allclose(mix.weights.detach().numpy(), before.numpy())
    assert not numpy.allclose(mixes[0].weights.detach().numpy(), mixes[1].weights.detach().numpy())


def test_pipeline_round_trips(fixture_dir, tmp_path):
    nlp = build(fixture_dir)
    nlp.initialize(lambda: examples(nlp))
    nlp.update(examples(nlp), sgd=Adam(0.01))
    texts = [text for text, _ in TEXTS]
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    for before, after in zip(nlp.pipe(texts), loaded.pipe(texts)):
        assert after.cats == pytest.approx(before.cats, abs=1e-6)
