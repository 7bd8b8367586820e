"""`spacy train`, `spacy evaluate` and `spacy package` with the shipped configs, on a sliver of UD EWT and WNUT-17."""

import numpy
import pytest
import spacy
import torch
from spacy.cli.evaluate import evaluate
from spacy.cli.package import package
from spacy.cli.train import train
from spacy.scorer import Scorer
from spacy.tokens import DocBin
from spacy.vectors import Vectors
from spacy.training import Example

from weasel.util import load_project_config

from conftest import ROOT
from spacy_elmo import load_lstm_bilm

from .conftest import CONFIGS, write_docbin



def run_training(config, corpora, corpus, fixture_dir, output, frozen):
    overrides = {"paths.train": str(corpora[corpus, "train"]), "paths.dev": str(corpora[corpus, "dev"]),
                 "paths.elmo_options": str(fixture_dir / "options.json"),
                 "paths.elmo_weights": str(fixture_dir / "lm_weights.hdf5"),
                 "components.elmo.model.frozen": frozen, "training.max_steps": 4, "training.eval_frequency": 4,
                 "training.batcher.size.start": 200}
    train(CONFIGS / config, output, overrides=overrides)
    return output / "model-last"


def bilm_changed(nlp, fixture_dir):
    reference = load_lstm_bilm(fixture_dir / "options.json", fixture_dir / "lm_weights.hdf5").state_dict()
    trained = nlp.get_pipe("elmo").model.shims[0].module.state_dict()
    return [name for name, value in trained.items() if not torch.equal(value.cpu(), reference[name])]


def mixes(nlp):
    found = {}
    for name, proc in nlp.pipeline:
        for node in getattr(proc, "model", None).walk() if name != "elmo" else ():
            if node.name == "elmo-scalar-mix":
                found[name] = node.shims[0].module.weights.detach().clone()
    return found


@pytest.mark.slow
@pytest.mark.parametrize("frozen", [True, False], ids=["frozen", "fine-tuned"])
def test_train_tagger_morphologizer_parser(corpora, fixture_dir, tmp_path, frozen):
    model = run_training("elmo_tagger_parser.cfg", corpora, "ewt", fixture_dir, tmp_path / "out", frozen)
    nlp = spacy.load(model)
    assert nlp.pipe_names == ["elmo", "tagger", "morphologizer", "parser"]
    assert bool(bilm_changed(nlp, fixture_dir)) is not frozen
    trained_mixes = mixes(nlp)
    assert set(trained_mixes) == {"tagger", "morphologizer", "parser"}
    assert all(not torch.allclose(w, torch.zeros(3)) for w in trained_mixes.values())
    doc = nlp("The bank approved the loan on Monday .")
    assert all(t.tag_ and t.pos_ and t.dep_ for t in doc)
    assert nlp.get_pipe("elmo").store == "none" and doc._.elmo is None, "listeners only: nothing kept"
    scores = evaluate(str(model), corpora["ewt", "dev"])
    assert {"tag_acc", "pos_acc", "morph_acc", "dep_uas", "dep_las"} <= set(scores)
    gold = list(DocBin().from_disk(corpora["ewt", "dev"]).get_docs(nlp.vocab))
    predicted = nlp.pipe(nlp.make_doc(doc.text) for doc in gold)
    examples = [Example(p, g) for p, g in zip(predicted, gold)]
    assert scores["tag_acc"] == pytest.approx(Scorer.score_token_attr(examples, "tag")["tag_acc"]), \
        "the ELMo pipeline must tag the same in `spacy evaluate` as in nlp.pipe"


@pytest.mark.slow
@pytest.mark.parametrize("frozen", [True, False], ids=["frozen", "fine-tuned"])
def test_train_ner(corpora, fixture_dir, tmp_path, frozen):
    model = run_training("elmo_ner.cfg", corpora, "wnut", fixture_dir, tmp_path / "out", frozen)
    nlp = spacy.load(model)
    assert nlp.pipe_names == ["elmo", "ner"]
    assert bool(bilm_changed(nlp, fixture_dir)) is not frozen
    assert not torch.allclose(mixes(nlp)["ner"], torch.zeros(3))
    assert set(nlp.get_pipe("ner").labels) >= {"person", "location"}
    scores = evaluate(str(model), corpora["wnut", "dev"])
    assert {"ents_p", "ents_r", "ents_f"} <= set(scores)
    if not frozen:
        return
    package(model, tmp_path, name="elmo_ner_test", version="0.0.1", create_sdist=True, create_wheel=False,
            force=True, silent=True)
    meta = spacy.util.load_meta(tmp_path / "en_elmo_ner_test-0.0.1" / "en_elmo_ner_test" / "meta.json")
    assert any(req.startswith("spacy-elmo") for req in meta["requirements"]), meta["requirements"]
    assert list((tmp_path / "en_elmo_ner_test-0.0.1" / "dist").glob("*.tar.gz"))


def test_project_yml_is_valid_and_points_at_real_files():
    """The comparison project itself is not run here (hours); its schema and the files it names are checked."""
    config = load_project_config(ROOT)
    assert set(config["workflows"]["all"]) <= {command["name"] for command in config["commands"]}
    for command in config["commands"]:
        for line in command["script"]:
            for word in line.split():
                if word.startswith(("configs/", "scripts/")):
                    assert (ROOT / word).is_file(), f"{command['name']}: {word} does not exist"


@pytest.fixture(scope="module")
def sst_and_vectors(data_dir, convert_sst, tmp_path_factory):
    """40 SST training trees and 20 dev ones as `scripts/convert_sst.py` writes them, and a tiny floret table."""
    out = tmp_path_factory.mktemp("sst")
    vocab = spacy.blank("en").vocab
    trees = convert_sst.read_trees(data_dir / "sst" / "train.txt")
    paths = {}
    for split, lines in (("train", slice(0, 40)), ("dev", slice(40, 60))):
        paths["sst", split] = write_docbin(convert_sst.trees_to_docs(trees[lines], vocab), out / f"sst-{split}.spacy")
    nlp = spacy.blank("en")
    table = numpy.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    nlp.vocab.vectors = Vectors(data=table, mode="floret", minn=4, maxn=5, hash_count=2)
    nlp.to_disk(out / "vectors")
    return paths, out / "vectors"


CORPUS = {"ner": "wnut", "tagger_parser": "ewt", "textcat": "sst"}
SYSTEMS = [(system, task) for system in ("baseline", "elmo", "vectors", "vectors_elmo") for task in CORPUS]
SYSTEMS += [(system, task) for system in ("vectors_bilstm", "vectors_elmo_bilstm") for task in ("ner", "textcat")]


@pytest.mark.slow
@pytest.mark.parametrize("system,task", SYSTEMS)
def test_every_comparison_config_trains_and_reads_its_features(system, task, corpora, sst_and_vectors,
                                                                fixture_dir, tmp_path):
    """A few steps of each config; a vectors config must read the static table (zeroing it changes the
    output), a config without vectors must not need one."""
    sst, vectors = sst_and_vectors
    paths, corpus = {**corpora, **sst}, CORPUS[task]
    overrides = {"paths.train": str(paths[corpus, "train"]), "paths.dev": str(paths[corpus, "dev"]),
                 "training.max_steps": 4, "training.eval_frequency": 4, "training.batcher.size.start": 200}
    if system.startswith("vectors"):
        overrides["paths.vectors"] = str(vectors)
    if "elmo" in system.split("_"):
        overrides.update({"paths.elmo_options": str(fixture_dir / "options.json"),
                          "paths.elmo_weights": str(fixture_dir / "lm_weights.hdf5")})
    train(CONFIGS / f"{system}_{task}.cfg", tmp_path / "out", overrides=overrides)
    nlp = spacy.load(tmp_path / "out" / "model-last")
    tok2vec = nlp.get_pipe(nlp.pipe_names[-1]).model.get_ref("tok2vec")
    text = "The movie was a charming , funny surprise ."
    before = tok2vec.predict([nlp(text)])[0]
    if not system.startswith("vectors"):
        assert nlp.vocab.vectors.shape[0] == 0
        return
    assert nlp.vocab.vectors.mode == "floret" and nlp.vocab.vectors.shape == (64, 8)
    nlp.vocab.vectors.data[:] = 0
    after = tok2vec.predict([nlp(text)])[0]
    assert before.shape == after.shape and not numpy.allclose(before, after)
