"""ELMo concatenated with spaCy token features (spacy-elmo.ElmoConcatTok2Vec.v1), the frozen-biLM
training cache, and the shipped configs."""
import json
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.cli.init_config import fill_config
from spacy.training import Example
from thinc.api import Adam, Config

from conftest import ROOT
from spacy_elmo.pipeline.doc_cache import DocCache

SENTENCES = [("The bank approved the loan .", ["DET", "NOUN", "VERB", "DET", "NOUN", "PUNCT"]),
             ("I sat on the river bank .", ["PRON", "VERB", "ADP", "DET", "NOUN", "NOUN", "PUNCT"]),
             ("She reads old books", ["PRON", "VERB", "ADJ", "NOUN"]),
             ("Bob saw a big dog .", ["PROPN", "VERB", "DET", "ADJ", "NOUN", "PUNCT"])]
ENCODERS = {
    "maxout": {"@architectures": "spacy.MaxoutWindowEncoder.v2", "width": 24, "depth": 1, "window_size": 1,
               "maxout_pieces": 2},
    "bilstm": {"@architectures": "spacy.TorchBiLSTMEncoder.v1", "width": 24, "depth": 1, "dropout": 0.0},
}


def concat_cfg(encoder="maxout"):
    return {"@architectures": "spacy-elmo.ElmoConcatTok2Vec.v1", "width": 24,
            "elmo": {"@architectures": "spacy-elmo.ElmoListener.v1", "width": None, "upstream": "elmo",
                     "dropout": 0.1, "project": False, "mix": {"@architectures": "spacy-elmo.ScalarMix.v1"}},
            "embed": {"@architectures": "spacy.MultiHashEmbed.v2", "width": 24, "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
                      "rows": [500, 100, 100, 100], "include_static_vectors": False},
            "encode": ENCODERS[encoder]}


def build(fixture_dir, encoder=None, **elmo_model):
    """An `elmo` component on the official test model, and a tagger on the concatenation if `encoder` is given."""
    nlp = spacy.blank("en")
    nlp.add_pipe("elmo", config={"model": {"options_file": str(fixture_dir / "options.json"),
                                           "weight_file": str(fixture_dir / "lm_weights.hdf5"), **elmo_model}})
    if encoder:
        nlp.add_pipe("tagger", config={"model": {"@architectures": "spacy.Tagger.v2", "tok2vec": concat_cfg(encoder)}})
    return nlp


def examples(nlp):
    return [Example.from_dict(nlp.make_doc(text), {"tags": tags}) for text, tags in SENTENCES]


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_concat_tagger_learns_and_round_trips(fixture_dir, tmp_path, encoder):
    nlp = build(fixture_dir, encoder)
    nlp.initialize(lambda: examples(nlp))
    optimizer = Adam(0.01)
    losses = []
    for _ in range(30):
        losses.append(nlp.update(examples(nlp), sgd=optimizer)["tagger"])
    assert losses[-1] < 0.3 * losses[0], losses
    texts = [text for text, _ in SENTENCES]
    tagger = nlp.get_pipe("tagger")
    scores = tagger.model.predict(list(nlp.pipe(texts, disable=["tagger"])))
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    again = loaded.get_pipe("tagger").model.predict(list(loaded.pipe(texts, disable=["tagger"])))
    for before, after in zip(scores, again):
        numpy.testing.assert_array_equal(before, after)
    assert [t.tag_ for t in loaded(texts[0])] == [t.tag_ for t in nlp(texts[0])]


def test_replace_listeners_inside_concat_saves_and_loads(fixture_dir, tmp_path):
    """spaCy hands replace_listener_cfg the whole model.tok2vec block, not the listener's own
    (model.tok2vec.elmo here); the copy's config must still be the listener's, or spacy.load fails."""
    nlp = build(fixture_dir, "maxout")
    nlp.initialize(lambda: examples(nlp))
    nlp.update(examples(nlp), sgd=Adam(0.01))
    texts = [text for text, _ in SENTENCES]
    scores = nlp.get_pipe("tagger").model.predict(list(nlp.pipe(texts, disable=["tagger"])))
    nlp.replace_listeners("elmo", "tagger", ["model.tok2vec.elmo"])
    block = nlp.config["components"]["tagger"]["model"]["tok2vec"]
    assert block["@architectures"] == "spacy-elmo.ElmoConcatTok2Vec.v1"
    assert block["elmo"]["@architectures"] == "spacy-elmo.ElmoTok2Vec.v1" and "embed" not in block["elmo"]
    nlp.remove_pipe("elmo")
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.pipe_names == ["tagger"]
    again = loaded.get_pipe("tagger").model.predict([loaded.make_doc(text) for text in texts])
    for before, after in zip(scores, again):
        numpy.testing.assert_allclose(before, after, atol=1e-5)


def layers_of(nlp, docs, is_train):
    model = nlp.get_pipe("elmo").model
    return model(docs, is_train=is_train)[0] if is_train else model.predict(docs)


def test_frozen_training_cache_gives_the_uncached_layers_within_its_bound(fixture_dir):
    texts = [text for text, _ in SENTENCES] * 2 + ["A much longer sentence than the others , with more words ."]
    nlp = build(fixture_dir)
    nlp.initialize()
    expected = layers_of(nlp, [nlp.make_doc(t) for t in texts], is_train=False)
    one_doc = expected[-1].nbytes
    model = nlp.get_pipe("elmo").model
    model.attrs["train_cache"] = cache = DocCache(max_mb=2.5 * one_doc / 2**20)
    for _ in range(2):
        found = layers_of(nlp, [nlp.make_doc(t) for t in texts], is_train=True)
        for want, got in zip(expected, found):
            numpy.testing.assert_allclose(got, want, atol=1e-6)
    # the four distinct short Docs fit (their repeats are the same keys); the long one would pass the bound
    assert len(cache) == 4 and cache.nbytes == sum(x.nbytes for x in expected[:4]) <= cache.max_bytes
    assert nlp.get_pipe("elmo").model.attrs["train_cache"] is cache
    layers_of(nlp, [nlp.make_doc("An unseen sentence in prediction")], is_train=False)
    assert len(cache) == 4, "prediction must not fill the training cache"


def test_float16_cache_halves_memory_and_stays_close(fixture_dir):
    nlp = build(fixture_dir, train_cache_dtype="float16")
    nlp.initialize()
    docs = [nlp.make_doc(text) for text, _ in SENTENCES]
    expected = layers_of(nlp, docs, is_train=False)
    layers_of(nlp, docs, is_train=True)
    found = layers_of(nlp, [nlp.make_doc(text) for text, _ in SENTENCES], is_train=True)
    cache = nlp.get_pipe("elmo").model.attrs["train_cache"]
    assert cache.nbytes == sum(x.nbytes for x in expected) // 2
    for want, got in zip(expected, found):
        assert got.dtype == numpy.float32
        numpy.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)


def test_cache_is_off_when_the_bilm_trains_or_set_to_zero(fixture_dir):
    for settings in ({"frozen": False}, {"train_cache_mb": 0}):
        nlp = build(fixture_dir, **settings)
        nlp.initialize()
        layers_of(nlp, [nlp.make_doc("The bank approved the loan .")], is_train=True)
        assert len(nlp.get_pipe("elmo").model.attrs["train_cache"]) == 0


def test_cache_settings_are_checked():
    with pytest.raises(ValueError, match="train_cache_mb"):
        DocCache(max_mb=float("nan"))
    with pytest.raises(ValueError, match="train_cache_dtype"):
        DocCache(max_mb=1, dtype="int8")


@pytest.mark.parametrize("config", sorted(p.name for p in (ROOT / "configs").glob("*.cfg")))
def test_fill_config_accepts_every_shipped_config_unchanged(config, tmp_path):
    """What `spacy init fill-config` runs, in this process (a subprocess per config costs a spaCy + torch import)."""
    filled = tmp_path / "filled.cfg"
    fill_config(filled, ROOT / "configs" / config, silent=True)
    assert Config().from_disk(filled, interpolate=False) == Config().from_disk(ROOT / "configs" / config, interpolate=False)


def read_config(name: str) -> Config:
    return Config().from_disk(ROOT / "configs" / f"{name}.cfg", interpolate=False)


PAIRS = [(task, *pair) for task in ("ner", "tagger_parser", "textcat")
         for pair in (("baseline", "elmo"), ("vectors", "vectors_elmo"))]
PAIRS += [(task, "vectors_bilstm", "vectors_elmo_bilstm") for task in ("ner", "textcat")]


@pytest.mark.parametrize("task,baseline_name,elmo_name", PAIRS)
def test_elmo_config_differs_from_its_baseline_only_by_elmo(task, baseline_name, elmo_name):
    elmo, baseline = read_config(f"{elmo_name}_{task}"), read_config(f"{baseline_name}_{task}")
    assert elmo["nlp"]["pipeline"] == ["elmo"] + baseline["nlp"]["pipeline"]
    for name in baseline["nlp"]["pipeline"]:
        ours, theirs = elmo["components"][name]["model"], baseline["components"][name]["model"]
        assert ours["tok2vec"]["embed"] == theirs["tok2vec"]["embed"]
        assert ours["tok2vec"]["encode"] == theirs["tok2vec"]["encode"]
        assert {k: v for k, v in ours.items() if k != "tok2vec"} == {k: v for k, v in theirs.items() if k != "tok2vec"}
    for section in ("training", "corpora", "initialize"):
        assert elmo[section] == baseline[section]
    assert {k: v for k, v in elmo["paths"].items() if not k.startswith("elmo_")} == baseline["paths"]


@pytest.mark.parametrize("task", ["ner", "tagger_parser", "textcat"])
@pytest.mark.parametrize("plain,with_vectors", [("baseline", "vectors"), ("elmo", "vectors_elmo")])
def test_vectors_config_differs_only_by_its_static_vectors(task, plain, with_vectors):
    """The headline pair is today's pair with static vectors switched on in every embedding, nothing else."""
    ours, theirs = read_config(f"{with_vectors}_{task}"), read_config(f"{plain}_{task}")
    assert ours["paths"]["vectors"] == "corpus/vectors/en_floret" and theirs["paths"]["vectors"] is None
    embeds = 0
    for name in theirs["nlp"]["pipeline"]:
        if name == "elmo":
            continue
        embed = theirs["components"][name]["model"]["tok2vec"]["embed"]
        assert embed["include_static_vectors"] is False
        theirs["components"][name]["model"]["tok2vec"]["embed"] = {**embed, "include_static_vectors": True}
        embeds += 1
    theirs["paths"]["vectors"] = ours["paths"]["vectors"]
    assert embeds >= 1 and ours == theirs


def test_results_table_from_metrics_files(tmp_path):
    """summary.json holds the runs, the relative error reduction of the means and, per seed, the differences;
    runs of a variant (the budget study) form their own comparison and never enter the plain one; the README
    gets the headline table and the budget summary on the budget runs' seeds, results.md every table."""
    metrics = tmp_path / "metrics" / "wnut17"
    metrics.mkdir(parents=True)
    systems = (("baseline", [0.40, 0.44]), ("elmo", [0.50, 0.58]), ("vectors", [0.50, 0.50]), ("vectors_elmo", [0.60, 0.60]),
               ("vectors_budget2x", [0.90]), ("vectors_elmo_budget2x", [0.95]))
    for system, values in systems:
        for seed, f in enumerate(values):
            stem = metrics / f"{system}_seed{seed}"
            stem.with_suffix(".json").write_text(json.dumps({"ents_p": f, "ents_r": f, "ents_f": f}))
            stem.with_suffix(".run.json").write_text(json.dumps({"seed": seed, "train_seconds": 100.0}))
            records = [{"epoch": 0, "step": 200, "words": 1000, "seconds": 10, "score": 0.3},
                       {"epoch": 1, "step": 400, "words": 3000, "seconds": 15, "score": 0.2}]
            Path(f"{stem}.train.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
            if system.startswith("vectors") and "budget" not in system:  # per-Doc counts: ELMo finds one more entity
                tp = 2 if "elmo" in system else 1
                Path(f"{stem}.test.jsonl").write_text((json.dumps({"tp": tp, "pred": 2, "gold": 2}) + "\n") * 5)
    search = tmp_path / "metrics" / "search" / "wnut17"
    search.mkdir(parents=True)
    (search / "vectors_bilstm_wide_seed0.json").write_text(json.dumps({
        "task": "wnut17", "system": "vectors_bilstm", "variant": "wide", "train_seconds": 1234.5, "dev_score": 0.4,
        "overrides": ["--components.ner.model.tok2vec.embed.width", "256"], "best_step": 800, "steps": 1600,
        "dev_other_scores": {"ents_p": 0.5, "ents_r": 0.4, "ents_f": 0.4, "speed": 900.0}}))
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- results:start -->\nold\n<!-- results:end -->\nafter\n")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "results_table.py"), "metrics", "--readme", "README.md"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "metrics" / "summary.json").read_text())
    assert [(e["comparison"], e["metric"]) for e in summary] == [
        (c, m) for c in ("vectors", "features", "budget2x") for m in ("ents_p", "ents_r", "ents_f")]
    assert summary[-1]["elmo"]["runs"] == ["metrics/wnut17/vectors_elmo_budget2x_seed0.json"]
    assert summary[-1]["rer"] == pytest.approx(50)
    f1 = next(e for e in summary if e["metric"] == "ents_f" and e["comparison"] == "features")
    assert f1["elmo"]["runs"] == ["metrics/wnut17/elmo_seed0.json", "metrics/wnut17/elmo_seed1.json"]
    assert f1["elmo"]["config"] == "configs/elmo_ner.cfg"
    assert f1["rer"] == pytest.approx(100 * (0.58 - 0.46) / 0.58)
    headline = next(e for e in summary if e["metric"] == "ents_f" and e["comparison"] == "vectors")
    assert headline["bootstrap_p"] == 0.0 and f1["bootstrap_p"] is None
    assert headline["baseline"]["config"] == "configs/vectors_ner.cfg" and headline["rer"] == pytest.approx(20.0)
    text = readme.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "old" not in text
    features_row = ("| WNUT-17 emerging.test.annotated | entity F | 42.00 ± 2.83 (n=2) | 54.00 ± 5.66 (n=2) | +20.7 % "
                    "| +12.00 [+10.00, +14.00], 2/2 seeds | n/a |")
    headline_row = ("| WNUT-17 emerging.test.annotated | entity F | 50.00 ± 0.00 (n=2) | 60.00 ± 0.00 (n=2) | +20.0 % "
                    "| +10.00 [+10.00, +10.00], 2/2 seeds | 0.000 |")
    results = (tmp_path / "metrics" / "results.md").read_text()
    assert headline_row in text and features_row not in text and "spaCy features, no static vectors" in text
    assert results.index(headline_row) < results.index(features_row)
    budget_row = ("| WNUT-17 emerging.test.annotated | entity F | 0 | 50.00 → 60.00 (+20.0 %) | 90.00 → 95.00 (+50.0 %) |")
    assert budget_row in text and budget_row in results
    assert "| 100 | 400 | 100 | 400 | 200 | -10.00 |" in results
    assert (tmp_path / "metrics" / "results.png").stat().st_size > 1000
    assert ("| wnut17 | wide | `components.ner.model.tok2vec.embed.width=256` | vectors_bilstm | 40.00 "
            "| entity P 50.00, entity R 40.00, entity F 40.00 | 800 / 1600 | 1,234 |") in \
        (tmp_path / "metrics" / "search.md").read_text()
