"""The `elmo` component as a user meets it: add_pipe, annotations, vector hooks, batching, serialization, bad input."""
import os
import pickle
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab
from thinc.api import ConfigValidationError

from spacy_elmo import WeightsError, load_lstm_bilm, restore_hooks
from spacy_elmo.embedder import Embedder
from spacy_elmo.errors import ElmoError
from spacy_elmo.pipeline.spacy_patches import install_patches, uninstall_patches

TEXTS = [
    "I sat on the river bank and watched the water.",
    "",
    "The bank approved the loan.",
    "   \n  ",
    "A much longer sentence with many tokens follows here , and it keeps going for quite a while "
    "so that the batch holds rows of very different lengths .",
    "Short one.",
]


def elmo_config(fixture_dir, **model):
    return {"model": {"options_file": str(fixture_dir / "options.json"),
                      "weight_file": str(fixture_dir / "lm_weights.hdf5"), **model}}


def make_nlp(fixture_dir, lang="en", config=None, **model):
    nlp = spacy.blank(lang)
    nlp.add_pipe("elmo", config={**elmo_config(fixture_dir, **model), **(config or {})})
    return nlp


@pytest.fixture(scope="module")
def nlp(fixture_dir):
    return make_nlp(fixture_dir)


@pytest.fixture(scope="module")
def embedder(fixture_dir):
    return Embedder(load_lstm_bilm(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5"))


def test_add_pipe_then_call_annotates_every_token(nlp, embedder):
    doc = nlp("The quick brown fox jumps.")
    layers = doc._.elmo
    assert isinstance(layers, np.ndarray) and layers.dtype == np.float32
    assert layers.shape == (3, len(doc), 32)
    np.testing.assert_allclose(layers, embedder.embed_sentence([t.text for t in doc]), atol=1e-5)
    assert doc[1].vector.shape == (32,)
    np.testing.assert_allclose(doc[1].vector, layers[:, 1].mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(doc[1:3].vector, layers[:, 1:3].mean(axis=(0, 1)), atol=1e-6)
    np.testing.assert_allclose(doc.vector, layers.mean(axis=(0, 1)), atol=1e-6)
    assert doc.has_vector and doc[0].has_vector and doc[0:2].has_vector
    a, b = doc[1].vector, doc[3].vector
    expected = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert doc[1].similarity(doc[3]) == pytest.approx(expected, abs=1e-6)
    assert doc[0:2].similarity(doc) == pytest.approx(
        float(doc[0:2].vector @ doc.vector / np.linalg.norm(doc[0:2].vector) / np.linalg.norm(doc.vector)), abs=1e-6)
    assert doc.vector_norm == pytest.approx(float(np.linalg.norm(doc.vector)), rel=1e-6)
    assert doc[0:2].vector_norm == pytest.approx(float(np.linalg.norm(doc[0:2].vector)), rel=1e-6)


def test_bank_is_contextual_even_with_static_vectors(fixture_dir):
    nlp = make_nlp(fixture_dir)
    nlp.vocab.set_vector("bank", np.ones(5, dtype="float32"))
    river, money = nlp("the river bank"), nlp("the bank approved the loan")
    assert river[2].text == money[1].text == "bank"
    assert river[2].vector.shape == (32,)
    assert not np.allclose(river[2].vector, money[1].vector, atol=1e-3)
    assert river[2].similarity(money[1]) < 0.999
    assert river[2].similarity(river[2]) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("mode,width", [("average", 32), ("top", 32), (0, 32), (-2, 32), ("concat", 96)])
def test_vector_modes(fixture_dir, mode, width):
    nlp = make_nlp(fixture_dir, config={"vectors": mode, "set_doc_tensor": True})
    doc = nlp("Colorless green ideas sleep furiously.")
    layers = doc._.elmo
    expected = {"average": layers.mean(0), "top": layers[-1], 0: layers[0], -2: layers[-2],
                "concat": np.concatenate(list(layers), axis=1)}[mode]
    assert doc[2].vector.shape == (width,)
    np.testing.assert_allclose(doc[2].vector, expected[2], atol=1e-6)
    np.testing.assert_allclose(doc.tensor, expected, atol=1e-6)


def test_doc_tensor_off_by_default(nlp):
    assert nlp("Nothing on the tensor.").tensor.size == 0


@pytest.mark.parametrize("mode", ["mean", 3, True])
def test_bad_vector_mode_is_rejected(fixture_dir, mode):
    with pytest.raises((ElmoError, ConfigValidationError), match="vectors"):
        make_nlp(fixture_dir, config={"vectors": mode}).initialize()


def test_pipe_equals_one_by_one(nlp):
    texts = TEXTS * 3
    batched = list(nlp.pipe(texts, batch_size=7))
    for text, doc in zip(texts, batched):
        single = nlp(text)
        assert doc.text == text
        np.testing.assert_allclose(doc._.elmo, single._.elmo, atol=1e-5)
        if len(doc):
            np.testing.assert_allclose(doc.vector, single.vector, atol=1e-5)


def test_deterministic(nlp):
    first = nlp(TEXTS[0])._.elmo
    nlp(TEXTS[4])
    np.testing.assert_array_equal(first, nlp(TEXTS[0])._.elmo)


def test_one_sequence_per_sentence(fixture_dir, embedder):
    nlp = make_nlp(fixture_dir)
    nlp.add_pipe("sentencizer", first=True)
    doc = nlp("This is one. And here comes another sentence.")
    sents = list(doc.sents)
    assert len(sents) == 2
    for sent in sents:
        alone = embedder.embed_sentence([t.text for t in sent])
        np.testing.assert_allclose(doc._.elmo[:, sent.start : sent.end], alone, atol=1e-5)


def test_windows_without_sentences(fixture_dir, embedder):
    nlp = make_nlp(fixture_dir, max_length=4)
    doc = nlp("one two three four five six seven eight nine ten")
    for start in range(0, len(doc), 4):
        words = [t.text for t in doc[start : start + 4]]
        np.testing.assert_allclose(doc._.elmo[:, start : start + 4], embedder.embed_sentence(words), atol=1e-5)


def test_whitespace_tokens_are_skipped(nlp, embedder):
    doc = nlp("Hello  \n\n world !")
    spaces = [t.i for t in doc if t.is_space]
    assert spaces
    assert not doc[spaces[0]].has_vector and not doc[spaces[0]].vector.any()
    words = [t.text for t in doc if not t.is_space]
    kept = [t.i for t in doc if not t.is_space]
    np.testing.assert_allclose(doc._.elmo[:, kept], embedder.embed_sentence(words), atol=1e-5)


def test_empty_and_whitespace_only_docs(nlp):
    empty = nlp("")
    assert empty._.elmo.shape == (3, 0, 32)
    assert not empty.has_vector and empty.vector.shape == (32,) and not empty.vector.any()
    blank = nlp("   \n\t  ")
    assert blank._.elmo.shape == (3, len(blank), 32) and not blank._.elmo.any()
    assert not blank.has_vector
    assert empty.similarity(blank) == 0.0


def test_control_characters_and_huge_token(nlp):
    doc = nlp("a\x00b \x07bell \u200bzero \ufeffbom \x1b[31m")
    assert np.isfinite(doc._.elmo).all() and doc._.elmo.shape[1] == len(doc)
    huge = "x" * 10_000
    doc = nlp(f"a {huge} token")
    assert doc[1].text == huge and np.isfinite(doc._.elmo).all()
    cut = nlp("a " + "x" * 48 + " token")
    np.testing.assert_allclose(doc._.elmo, cut._.elmo, atol=1e-6)


def test_n_process_and_restore_hooks(nlp):
    texts = [t for t in TEXTS if t.strip()]
    serial = [nlp(t) for t in texts]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parallel = list(nlp.pipe(texts, n_process=2, batch_size=2))
    for doc, ref in zip(parallel, serial):
        np.testing.assert_allclose(doc._.elmo, ref._.elmo, atol=1e-5)
        assert "vector" in doc.user_token_hooks, "the hooks come back without restore_hooks"
        np.testing.assert_allclose(doc[0].vector, ref[0].vector, atol=1e-5)
        assert doc.similarity(ref) == pytest.approx(1.0, abs=1e-5)


def test_n_process_prints_no_warning_about_hooks(fixture_dir):
    """spaCy's workers serialize each Doc and warn (W109) about hooks they cannot save; the ELMo hooks are
    taken off first and come back in the parent, so nothing is printed."""
    script = f"""
import spacy
nlp = spacy.blank("en")
nlp.add_pipe("elmo", config={elmo_config(fixture_dir)!r})
docs = list(nlp.pipe(["a cat sat", "on the mat", "it was warm", "and then"], n_process=2, batch_size=1))
assert all(doc.has_vector and "vector" in doc.user_token_hooks for doc in docs)
print(docs[0].vector.shape)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(32,)" and "W109" not in result.stderr and result.stderr == "", result.stderr


def test_docbin_and_doc_pickle(nlp):
    docs = [nlp(t) for t in TEXTS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = DocBin(docs=docs, store_user_data=True).to_bytes()
    loaded = list(DocBin().from_bytes(data).get_docs(Vocab()))
    for doc, ref in zip(loaded, docs):
        assert isinstance(doc._.elmo, np.ndarray)
        np.testing.assert_array_equal(doc._.elmo, ref._.elmo)
        np.testing.assert_allclose(doc.vector, ref.vector, atol=1e-6)
        assert doc.user_token_hooks["vector"] is restore_hooks(doc).user_token_hooks["vector"]
    ref = docs[0]
    copy = pickle.loads(pickle.dumps(ref))
    np.testing.assert_array_equal(copy[3].vector, ref[3].vector)


PATCHED = [(Language, "pipe"), (Language, "_multiprocessing_pipe"), (DocBin, "get_docs")]


def test_spacy_patches_install_once_and_uninstall(nlp):
    """Building `elmo` patched spaCy; installing again does not wrap twice; uninstalling restores
    spaCy's own methods (and DocBin Docs then lose their hooks, which is what the patch is for)."""
    patched = [vars(owner)[name] for owner, name in PATCHED]
    install_patches()
    assert [vars(owner)[name] for owner, name in PATCHED] == patched
    for method in patched:
        assert getattr(method, "_spacy_elmo_patch", False)
        assert method.__wrapped__.__code__.co_filename.endswith(os.path.join("spacy", "language.py")
                                                                 if "pipe" in method.__name__
                                                                 else os.path.join("spacy", "tokens", "_serialize.py"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = DocBin(docs=[nlp("the river bank")], store_user_data=True).to_bytes()
    try:
        uninstall_patches()
        uninstall_patches()
        assert [vars(owner)[name] for owner, name in PATCHED] == [m.__wrapped__ for m in patched]
        doc = next(DocBin().from_bytes(data).get_docs(nlp.vocab))
        assert doc._.elmo is not None and "vector" not in doc.user_token_hooks
    finally:
        install_patches()
    doc = next(DocBin().from_bytes(data).get_docs(nlp.vocab))
    assert "vector" in doc.user_token_hooks


def test_retokenized_doc_is_refused_not_misread(nlp):
    doc = nlp("New York is big")
    with doc.retokenize() as retokenizer:
        retokenizer.merge(doc[0:2])
    with pytest.raises(ElmoError, match="retokenized"):
        doc[0].vector


def test_restore_hooks_needs_annotation():
    with pytest.raises(ElmoError, match="elmo"):
        restore_hooks(Doc(Vocab(), words=["no", "elmo"]))


def test_to_disk_and_load_without_weight_files(fixture_dir, tmp_path):
    copies = tmp_path / "weights"
    copies.mkdir()
    for name in ("options.json", "lm_weights.hdf5"):
        shutil.copy(fixture_dir / name, copies / name)
    nlp = make_nlp(copies)
    nlp.initialize()
    expected = nlp(TEXTS[0])._.elmo
    nlp.to_disk(tmp_path / "pipeline")
    shutil.rmtree(copies)

    loaded = spacy.load(tmp_path / "pipeline")
    np.testing.assert_allclose(loaded(TEXTS[0])._.elmo, expected, atol=1e-6)
    sourced = spacy.blank("en")
    sourced.add_pipe("elmo", source=loaded)
    np.testing.assert_allclose(sourced(TEXTS[0])._.elmo, expected, atol=1e-6)
    restored = spacy.blank("en")
    restored.add_pipe("elmo", config=elmo_config(copies))
    restored.from_bytes(loaded.to_bytes())
    np.testing.assert_allclose(restored(TEXTS[0])._.elmo, expected, atol=1e-6)
    unpickled = pickle.loads(pickle.dumps(loaded))
    np.testing.assert_allclose(unpickled(TEXTS[0])._.elmo, expected, atol=1e-6)


def test_missing_weight_file_is_named(fixture_dir, tmp_path):
    missing = tmp_path / "nowhere.hdf5"
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"model": {"options_file": str(fixture_dir / "options.json"),
                                           "weight_file": str(missing)}})
    with pytest.raises(WeightsError, match="nowhere.hdf5"):
        nlp.initialize()
    with pytest.raises(WeightsError, match="nowhere.hdf5"):
        nlp("text")


def test_mismatched_weight_file_is_named(fixture_dir, tmp_path):
    options = (fixture_dir / "options.json").read_text().replace('"n_layers": 2', '"n_layers": 3')
    (tmp_path / "options.json").write_text(options)
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"model": {"options_file": str(tmp_path / "options.json"),
                                           "weight_file": str(fixture_dir / "lm_weights.hdf5")}})
    with pytest.raises(WeightsError, match="lm_weights.hdf5.*(Cell2|n_layers)"):
        nlp.initialize()


def test_half_a_pair_of_files_is_refused(fixture_dir):
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"model": {"options_file": str(fixture_dir / "options.json")}})
    with pytest.raises(WeightsError, match="weight_file"):
        nlp.initialize()


def test_default_model_works_out_of_the_box():
    """The bundled biLM: no files given, contextual layers, a context-free char-CNN layer."""
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo")
    river, money = nlp("I sat on the river bank ."), nlp("The bank approved the loan .")
    assert river[5].text == money[1].text == "bank"
    assert river._.elmo.shape == (3, 7, 256) and river._.elmo.dtype == np.float32
    np.testing.assert_allclose(river._.elmo[0, 5], money._.elmo[0, 1], atol=1e-5)
    assert not np.allclose(river._.elmo[2, 5], money._.elmo[2, 1], atol=1e-2)
    assert river[5].similarity(money[1]) < 0.99


def test_missing_default_model_is_a_clear_error(bundle_at, tmp_path):
    bundle_at(tmp_path / "none")
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo")
    with pytest.raises(WeightsError, match="pass an options file"):
        nlp("Hello world")


LONG_DOC_SCRIPT = """
import resource, sys, numpy as np, spacy, torch
from spacy.tokens import Doc
torch.set_num_threads(1)
fixtures = sys.argv[1]
nlp = spacy.blank("en")
nlp.add_pipe("elmo", config={"model": {"options_file": fixtures + "/options.json",
                                       "weight_file": fixtures + "/lm_weights.hdf5"}})
nlp("warm up")
words = [("word%d" % (i % 5000)) if i % 20 else "." for i in range(100_000)]
doc = Doc(nlp.vocab, words=words)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
doc = nlp(doc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert doc._.elmo.shape == (3, 100_000, 32) and np.isfinite(doc._.elmo).all()
print(before, after, doc._.elmo.nbytes)
"""


@pytest.mark.slow
def test_100k_token_doc_memory_is_bounded(fixture_dir):
    """Peak RSS growth while embedding a 100,000-token Doc, measured in a fresh process."""
    run = subprocess.run([sys.executable, "-c", LONG_DOC_SCRIPT, str(fixture_dir)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    before_kb, after_kb, output_bytes = map(int, run.stdout.split())
    growth = (after_kb - before_kb) * 1024
    # The result is 37 MiB; measured growth was 84 MiB: windows of 256 tokens in batches of 4,096 padded positions add little.
    assert growth < 2 * output_bytes + 64 * 2**20, (growth, output_bytes)
