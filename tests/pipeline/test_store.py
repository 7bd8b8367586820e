"""What each Doc keeps (`store`, `store_dtype`): its arrays and vectors, DocBin, n_process, listeners, old pipelines."""
import json
import re
import warnings

import numpy as np
import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example
from spacy.vocab import Vocab

from spacy_elmo.errors import ElmoError

from .test_listener import TRAIN, build, examples

TEXTS = ["I sat on the river bank .", "The bank approved the loan .", "   ", "Short one ."]
SETTINGS = [("layers", "float32"), ("layers", "float16"), ("vectors", "float32"), ("vectors", "float16"),
            ("none", "float32")]
IDS = [f"{store}-{dtype}" for store, dtype in SETTINGS]


def alone(fixture_dir, **config):
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"model": {"options_file": str(fixture_dir / "options.json"),
                                           "weight_file": str(fixture_dir / "lm_weights.hdf5")}, **config})
    return nlp


@pytest.fixture(scope="module")
def reference(fixture_dir):
    """float32 layers of TEXTS from a pipeline that keeps them all."""
    return [doc._.elmo for doc in alone(fixture_dir, store="layers").pipe(TEXTS)]


@pytest.fixture(scope="module")
def tagging(fixture_dir):
    """An initialized elmo + listener tagger per setting (same seed, so the same weights), and its tags."""
    def make(store, dtype="float32"):
        spacy.util.fix_random_seed(0)
        nlp = build(fixture_dir, store=store)
        nlp.get_pipe("elmo").cfg["store_dtype"] = dtype
        nlp.initialize(lambda: examples(nlp))
        return nlp

    return make


def check_kept(doc, layers, store, dtype):
    """`doc._.elmo`, `doc._.elmo_vectors` and `.vector` as `store` says, against float32 `layers`."""
    tolerance = 2e-3 if dtype == "float16" else 1e-6
    expected = layers.mean(axis=0)
    if store == "layers":
        assert doc._.elmo.dtype == dtype and doc._.elmo.shape == layers.shape and doc._.elmo_vectors is None
        np.testing.assert_allclose(doc._.elmo, layers, atol=tolerance)
    if store == "vectors":
        assert doc._.elmo is None and doc._.elmo_vectors.dtype == dtype and doc._.elmo_vectors.shape == expected.shape
        np.testing.assert_allclose(doc._.elmo_vectors, expected, atol=tolerance)
    if store == "none":
        assert doc._.elmo is None and doc._.elmo_vectors is None
        assert "vector" not in doc.user_token_hooks and not doc.has_vector
        return
    assert doc.has_vector == any(not t.is_space for t in doc)
    for token, vector in zip(doc, expected):
        assert token.vector.dtype == np.float32
        np.testing.assert_allclose(token.vector, vector, atol=tolerance)
    words = [i for i, t in enumerate(doc) if not t.is_space]
    if words:
        np.testing.assert_allclose(doc.vector, expected[words].mean(axis=0), atol=tolerance)


@pytest.mark.parametrize("store,dtype", SETTINGS, ids=IDS)
def test_each_setting_keeps_what_it_says(fixture_dir, reference, store, dtype):
    nlp = alone(fixture_dir, store=store, store_dtype=dtype)
    for doc, layers in zip(nlp.pipe(TEXTS), reference):
        check_kept(doc, layers, store, dtype)
    if store != "none":
        river, money = nlp(TEXTS[0]), nlp(TEXTS[1])
        assert river[5].similarity(money[1]) < 0.999 and river[5].similarity(river[5]) == pytest.approx(1.0, abs=1e-5)


def test_auto_keeps_layers_alone_and_nothing_for_listeners(fixture_dir, tagging):
    """`add_pipe("elmo")` alone keeps every layer as before; with a listener it keeps nothing, and the
    listener still gets every layer: the tags equal those of a pipeline that keeps them."""
    nlp = alone(fixture_dir)
    assert nlp.get_pipe("elmo").store == "layers" and nlp(TEXTS[0])._.elmo.shape == (3, 7, 32)
    light, full = tagging("auto"), tagging("layers")
    assert light.get_pipe("elmo").store == "none"
    texts = [text for text, _ in TRAIN] + TEXTS
    for doc, ref in zip(light.pipe(texts, batch_size=3), full.pipe(texts, batch_size=3)):
        assert doc._.elmo is None and doc._.elmo_vectors is None
        assert [t.tag_ for t in doc] == [t.tag_ for t in ref] and any(t.tag_ for t in ref)


def test_listener_runs_the_biLM_again_for_docs_out_of_the_last_batch(fixture_dir, tagging):
    """Nothing kept, and the tagger's batches (4) span several `elmo` batches (1): the Docs outside the
    last one get their layers again, exactly; without any, tags would come from zeros."""
    light, full = tagging("none"), tagging("layers")
    texts = [text for text, _ in TRAIN] + TEXTS
    sizes = {"elmo": {"batch_size": 1}, "tagger": {"batch_size": 4}}
    ran = []
    predicted = light.get_pipe("elmo").predicted
    rerun = predicted.rerun
    predicted.rerun = lambda docs: ran.append(len(docs)) or rerun(docs)
    tags = [[t.tag_ for t in doc] for doc in light.pipe(texts, component_cfg=sizes)]
    assert tags == [[t.tag_ for t in doc] for doc in full.pipe(texts)]
    assert sum(ran) == len(texts) - -(-len(texts) // 4), "each tagger batch but its last Doc ran again"


def test_training_with_an_annotating_frozen_elmo_that_keeps_nothing(fixture_dir, tagging):
    """`elmo` in frozen_components and annotating_components annotates a batch in pipes of
    `nlp.batch_size` Docs, so a larger batch has Docs out of its last pipe; they train all the same."""
    nlp = tagging("none")
    nlp.batch_size = 64
    batch = [Example.from_dict(nlp.make_doc(text), {"tags": tags}) for text, tags in TRAIN * 44][:130]
    optimizer = nlp.create_optimizer()
    losses = [nlp.update(batch, sgd=optimizer, exclude=["elmo"], annotates=["elmo"])["tagger"] for _ in range(3)]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("store,dtype", SETTINGS, ids=IDS)
def test_docbin_round_trip(fixture_dir, reference, store, dtype):
    nlp = alone(fixture_dir, store=store, store_dtype=dtype)
    docs = list(nlp.pipe(TEXTS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = DocBin(docs=docs, store_user_data=True).to_bytes()
    loaded = list(DocBin().from_bytes(data).get_docs(Vocab()))
    assert all(("vector" in doc.user_token_hooks) == (store != "none") for doc in loaded)
    for doc, before, layers in zip(loaded, docs, reference):
        check_kept(doc, layers, store, dtype)
        for name in ("elmo", "elmo_vectors"):
            assert (doc._.get(name) is None) == (before._.get(name) is None)
            if before._.get(name) is not None:
                np.testing.assert_array_equal(doc._.get(name), before._.get(name))


def docbin_bytes(docs) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return len(DocBin(docs=docs, store_user_data=True).to_bytes())


def test_docbin_bytes_follow_the_setting(fixture_dir):
    """Each setting smaller than the one before; with nothing kept, within 10% of the bare tokens."""
    texts = TEXTS * 5
    sizes = {setting: docbin_bytes(list(alone(fixture_dir, store=setting[0], store_dtype=setting[1]).pipe(texts)))
             for setting in SETTINGS}
    assert [sizes[key] for key in SETTINGS] == sorted(sizes.values(), reverse=True), sizes
    assert sizes["none", "float32"] < 1.1 * docbin_bytes([spacy.blank("en").make_doc(t) for t in texts]), sizes


@pytest.mark.parametrize("store,dtype", SETTINGS, ids=IDS)
def test_n_process(tagging, reference, store, dtype):
    nlp = tagging(store, dtype)
    texts = [t for t in TEXTS if t.strip()]
    serial = list(nlp.pipe(texts))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parallel = list(nlp.pipe(texts, n_process=2, batch_size=1))
    layers = [ref for ref, text in zip(reference, TEXTS) if text.strip()]
    for doc, ref, expected in zip(parallel, serial, layers):
        check_kept(doc, expected, store, dtype)
        assert [t.tag_ for t in doc] == [t.tag_ for t in ref]
        if store != "none":
            np.testing.assert_array_equal(doc[1].vector, ref[1].vector)


def make_old(path):
    """A saved pipeline as spacy-elmo wrote it before `store`: neither its config nor its cfg has the field."""
    config = (path / "config.cfg").read_text(encoding="utf8")
    (path / "config.cfg").write_text(re.sub(r"(?m)^store(_dtype)? = .*\n", "", config), encoding="utf8")
    cfg = json.loads((path / "elmo" / "cfg").read_text())
    (path / "elmo" / "cfg").write_text(json.dumps({k: v for k, v in cfg.items() if not k.startswith("store")}))


def test_pipeline_saved_before_the_setting_keeps_every_layer(tagging, reference, tmp_path):
    """spaCy fills "auto" into the old config; the pipeline still keeps float32 layers and tags as before.
    An explicit setting at load, or a pipeline saved with the setting, is taken as it is."""
    nlp = tagging("layers")
    nlp.to_disk(tmp_path / "old")
    make_old(tmp_path / "old")
    assert "store" not in (tmp_path / "old" / "config.cfg").read_text()
    old = spacy.load(tmp_path / "old")
    assert old.config["components"]["elmo"]["store"] == "auto" and old.get_pipe("elmo").store == "layers"
    for doc, ref, layers in zip(old.pipe(TEXTS), nlp.pipe(TEXTS), reference):
        check_kept(doc, layers, "layers", "float32")
        assert [t.tag_ for t in doc] == [t.tag_ for t in ref]
    slimmed = spacy.load(tmp_path / "old", config={"components": {"elmo": {"store": "vectors"}}})
    assert slimmed.get_pipe("elmo").store == "vectors" and slimmed(TEXTS[0])._.elmo is None
    tagging("auto").to_disk(tmp_path / "new")
    assert spacy.load(tmp_path / "new").get_pipe("elmo").store == "none"
    given = {"store": "layers", "store_dtype": "float16"}
    loaded = spacy.load(tmp_path / "new", config={"components": {"elmo": given}})
    assert loaded(TEXTS[0])._.elmo.dtype == np.float16, "the setting given at load wins over the saved cfg"
    again = spacy.util.load_model_from_config(old.config)  # the old config, trained or built anew
    assert again.get_pipe("elmo").store == "none", "a new build of an old listener config keeps nothing"


@pytest.mark.parametrize("config,message", [({"store": "all"}, "'store' must be one of"),
                                            ({"store_dtype": "int8"}, "'store_dtype' must be one of")])
def test_bad_setting_is_one_clear_error(fixture_dir, config, message):
    with pytest.raises(ElmoError, match=message):
        alone(fixture_dir, **config)
