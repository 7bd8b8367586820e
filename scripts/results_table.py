"""The ELMo-vs-baseline results from the per-run metrics files of scripts/run_comparison.py.

    python scripts/results_table.py metrics --readme README.md

Comparisons: "vectors" (spaCy features + static vectors, then the same + ELMo: the headline), "features"
(spaCy features alone, then + ELMo), "bilstm" (the headline pair with a BiLSTM task encoder) and the
EWT budget study "budget2x"/"budget4x" (the headline pair trained longer). Writes metrics/summary.json (one
entry per task, metric and comparison: both systems' config and run files, and the relative error
reduction of the means), metrics/results.md (mean ± standard deviation per metric and the seed-wise
differences; per run the training time, words/s and where its dev score peaked), metrics/results.png and,
when there are dev-search records (scripts/run_study.py), metrics/search.md; with --readme, puts the
tables of README_COMPARISONS and the budget study's summary into README.md between the markers
<!-- results:start --> and <!-- results:end --> (every table stays in metrics/results.md).
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Dict, List, Optional

import matplotlib
import numpy

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METRICS = {"ewt": ["pos_acc", "tag_acc", "morph_acc", "dep_uas", "dep_las"],
           "wnut17": ["ents_p", "ents_r", "ents_f"],
           "sst5": ["cats_micro_f", "cats_macro_f"]}
CONFIGS = {"ewt": "tagger_parser", "wnut17": "ner", "sst5": "textcat"}
LABELS = {"pos_acc": "UPOS", "tag_acc": "XPOS (TAG)", "morph_acc": "morph", "dep_uas": "UAS", "dep_las": "LAS",
          "ents_p": "entity P", "ents_r": "entity R", "ents_f": "entity F",
          "cats_micro_f": "accuracy", "cats_macro_f": "macro F"}
TEST_SETS = {"ewt": "UD English-EWT test", "wnut17": "WNUT-17 emerging.test.annotated", "sst5": "SST-5 test"}
COMPARISONS = {"vectors": {"baseline": "vectors", "elmo": "vectors_elmo",
                           "title": "spaCy features + static vectors (floret, same text as the biLM)"},
               "features": {"baseline": "baseline", "elmo": "elmo", "title": "spaCy features, no static vectors"},
               "bilstm": {"baseline": "vectors_bilstm", "elmo": "vectors_elmo_bilstm",
                          "title": "BiLSTM task encoder over spaCy features + static vectors "
                                   "(textcat: ELMo also at the encoder's output)"},
               "budget2x": {"baseline": "vectors", "elmo": "vectors_elmo", "variant": "budget2x",
                            "title": "static vectors pair at 2x the budget (EWT 4,000 steps)"},
               "budget4x": {"baseline": "vectors", "elmo": "vectors_elmo", "variant": "budget4x",
                            "title": "static vectors pair at 4x the budget (EWT 8,000 steps)"}}
README_COMPARISONS = ("vectors", "bilstm")
BUDGETS = {"vectors": "1x", "budget2x": "2x", "budget4x": "4x"}
TARGETS = {"ewt": ["pos_acc", "dep_las"], "wnut17": ["ents_f"], "sst5": ["cats_micro_f"]}
"""The metrics issue 26's targets name, the rows of the budget study's summary."""
SIDES = ("baseline", "elmo")
START, END = "<!-- results:start -->", "<!-- results:end -->"
BOOTSTRAP = {"ents_f": ("tp", "pred", "gold"), "cats_micro_f": ("correct",)}
"""The metrics with a paired bootstrap, and the per-Doc counts (scripts/predict_test.py) it resamples."""


def runs_of(metrics: Path, task: str, system: str, variant: str = "") -> List[Path]:
    stem = f"{system}_{variant}" if variant else system
    return sorted((metrics / task).glob(f"{stem}_seed*[0-9].json"))


def seed_of(path: Path) -> int:
    return int(path.stem.rsplit("_seed", 1)[1])


def mean_std(values: List[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * std:.2f}"


def rer(baseline: float, elmo: float) -> Optional[float]:
    """Relative error reduction of ELMo over the baseline, in percent (scores are fractions)."""
    error = 1 - baseline
    return None if error <= 0 else 100 * (error - (1 - elmo)) / error


def speeds(train_log: Path) -> Dict[str, Optional[float]]:
    """Words/s of epoch 1 and of epochs 2+, from the evaluation records (evaluation time included), and
    where the dev score peaked: its step and how much the last third of the run added to the best before it."""
    records = [json.loads(line) for line in train_log.read_text().splitlines() if line.strip()]
    first = [r for r in records if r["epoch"] == 0]
    later = [r for r in records if r["epoch"] > 0]
    epoch1 = first[-1]["words"] / first[-1]["seconds"] if first and first[-1]["seconds"] else None
    epoch2 = None
    if first and len(later) > 0 and later[-1]["seconds"] > first[-1]["seconds"]:
        epoch2 = (later[-1]["words"] - first[-1]["words"]) / (later[-1]["seconds"] - first[-1]["seconds"])
    best = max(records, key=lambda r: r["score"]) if records else None
    cut = 2 * records[-1]["step"] / 3 if records else 0
    early = [r["score"] for r in records if r["step"] <= cut]
    late = [r["score"] for r in records if r["step"] > cut]
    gain = 100 * (max(late) - max(early)) if early and late else None
    return {"epoch1": epoch1, "epoch2+": epoch2, "steps": records[-1]["step"] if records else None,
            "best_step": best["step"] if best else None, "last_third_gain": gain}


def bootstrap_p(runs: List[List[Path]], key: str, samples: int = 2000) -> Optional[float]:
    """Paired bootstrap over the test Docs: the share of resamples on which the seed mean of + ELMo is not
    above the baseline's, every run (the seeds both systems ran) scored on the same resampled Docs; None
    unless every run has its per-Doc counts (SYSTEM_seedN.test.jsonl)."""
    files = [[path.with_name(path.stem + ".test.jsonl") for path in side] for side in runs]
    if not all(f.exists() for side in files for f in side):
        return None
    counts = [[numpy.array([[json.loads(line)[c] for c in BOOTSTRAP[key]] for line in f.read_text().splitlines()],
                           dtype=float) for f in side] for side in files]
    n_docs = counts[0][0].shape[0]
    weights = numpy.random.default_rng(0).multinomial(n_docs, numpy.full(n_docs, 1 / n_docs), size=samples)
    means = []
    for side in counts:
        sums = [weights @ c for c in side]
        scores = [s[:, 0] / n_docs if key == "cats_micro_f" else 2 * s[:, 0] / numpy.maximum(s[:, 1] + s[:, 2], 1)
                  for s in sums]
        means.append(numpy.mean(scores, axis=0))
    return float(numpy.mean(means[1] <= means[0]))


def summarise(metrics: Path, root: Path) -> List[dict]:
    """One entry per (task, metric, comparison) whose two systems both have runs; "baseline" and "elmo"
    name the comparison's two sides, "system" inside each the configs they ran."""
    summary = []
    for comparison, sides in COMPARISONS.items():
        for task, keys in METRICS.items():
            runs = {side: runs_of(metrics, task, sides[side], sides.get("variant", "")) for side in SIDES}
            if not all(runs.values()):
                continue
            scores = {side: [json.loads(path.read_text()) for path in runs[side]] for side in SIDES}
            for key in keys:
                entry = {"task": task, "metric": key, "comparison": comparison}
                for side in SIDES:
                    values = [s[key] for s in scores[side]]
                    entry[side] = {"system": sides[side], "config": f"configs/{sides[side]}_{CONFIGS[task]}.cfg",
                                   "runs": [str(path.resolve().relative_to(root)) for path in runs[side]],
                                   "mean": statistics.mean(values), "values": values,
                                   "seeds": [seed_of(path) for path in runs[side]]}
                entry["rer"] = rer(entry["baseline"]["mean"], entry["elmo"]["mean"])
                if key in BOOTSTRAP:
                    common = set.intersection(*({seed_of(path) for path in runs[side]} for side in SIDES))
                    paired = [[path for path in runs[side] if seed_of(path) in common] for side in SIDES]
                    entry["bootstrap_p"] = bootstrap_p(paired, key)
                summary.append(entry)
    return summary


def seedwise(entry: dict) -> str:
    """+ ELMo minus baseline on the seeds both sides ran, in points: mean [min, max], and how many ELMo won."""
    by_seed = [dict(zip(entry[side]["seeds"], entry[side]["values"])) for side in SIDES]
    diffs = [100 * (by_seed[1][seed] - by_seed[0][seed]) for seed in sorted(set(by_seed[0]) & set(by_seed[1]))]
    if not diffs:
        return "n/a"
    return (f"{statistics.mean(diffs):+.2f} [{min(diffs):+.2f}, {max(diffs):+.2f}], "
            f"{sum(d > 0 for d in diffs)}/{len(diffs)} seeds")


def p_value(entry: dict) -> str:
    if entry["metric"] not in BOOTSTRAP:
        return ""
    return "n/a" if entry.get("bootstrap_p") is None else f"{entry['bootstrap_p']:.3f}"


def score_table(summary: List[dict]) -> str:
    lines = ["| test set | metric | baseline | + ELMo | relative error reduction | + ELMo − baseline, seed by seed "
             "| paired bootstrap p |", "|---|---|---|---|---|---|---|"]
    for entry in summary:
        base, elmo = entry["baseline"], entry["elmo"]
        change = "n/a" if entry["rer"] is None else f"{entry['rer']:+.1f} %"
        lines.append(f"| {TEST_SETS[entry['task']]} | {LABELS[entry['metric']]} | {mean_std(base['values'])} "
                     f"(n={len(base['values'])}) | {mean_std(elmo['values'])} (n={len(elmo['values'])}) | {change} "
                     f"| {seedwise(entry)} | {p_value(entry)} |")
    return "\n".join(lines)


def budget_table(summary: List[dict]) -> str:
    """Per target metric of a task with budget runs: both means and the relative error reduction at each
    budget, every budget on the seeds the longest-run study used, so that only the budget differs."""
    studies = [c for c in BUDGETS if c != "vectors" and any(e["comparison"] == c for e in summary)]
    if not studies:
        return ""
    find = {(e["comparison"], e["task"], e["metric"]): e for e in summary}
    lines = [f"| test set | metric | seeds | {' | '.join(BUDGETS[c] for c in ('vectors', *studies))} |",
             "|---|---|---|" + "---|" * (1 + len(studies))]
    for entry in (e for e in summary if e["comparison"] == studies[-1] and e["metric"] in TARGETS[e["task"]]):
        seeds = sorted(set(entry["baseline"]["seeds"]) & set(entry["elmo"]["seeds"]))
        cells = []
        for comparison in ("vectors", *studies):
            other = find.get((comparison, entry["task"], entry["metric"]))
            means = [statistics.mean(v for s, v in zip(other[side]["seeds"], other[side]["values"]) if s in seeds)
                     if other and set(seeds) <= set(other[side]["seeds"]) else None for side in SIDES]
            cells.append("n/a" if None in means else
                         f"{100 * means[0]:.2f} → {100 * means[1]:.2f} ({rer(*means):+.1f} %)")
        lines.append(f"| {TEST_SETS[entry['task']]} | {LABELS[entry['metric']]} | {', '.join(map(str, seeds))} | "
                     f"{' | '.join(cells)} |")
    return "\n".join(lines)


def speed_table(metrics: Path) -> str:
    lines = ["| test set | system | seed | training time (s) | steps | words/s epoch 1 | words/s epoch 2+ "
             "| best dev at step | dev gain in the last third (points) |", "|---|---|---|---|---|---|---|---|---|"]
    systems = list(dict.fromkeys((sides[side], sides.get("variant", ""))
                                 for sides in COMPARISONS.values() for side in SIDES))
    for task in METRICS:
        for system, variant in systems:
            for path in runs_of(metrics, task, system, variant):
                run = json.loads(path.with_name(path.stem + ".run.json").read_text())
                speed = speeds(path.with_name(path.stem + ".train.jsonl"))
                cells = [f"{speed[k]:,.0f}" if speed[k] else "n/a" for k in ("epoch1", "epoch2+")]
                gain = "n/a" if speed["last_third_gain"] is None else f"{speed['last_third_gain']:+.2f}"
                name = f"{system} ({variant})" if variant else system
                lines.append(f"| {TEST_SETS[task]} | {name} | {run['seed']} | {run['train_seconds']:,.0f} | "
                             f"{speed['steps']} | {cells[0]} | {cells[1]} | {speed['best_step']} | {gain} |")
    return "\n".join(lines)


def chart(summary: List[dict], path: Path) -> None:
    """One panel per comparison: both sides' mean ± std per (task, metric)."""
    panels = [c for c in COMPARISONS if any(e["comparison"] == c for e in summary)]
    width = max(6, 1.1 * max(sum(e["comparison"] == c for e in summary) for c in panels))
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, 4 * len(panels)), squeeze=False)
    for ax, comparison in zip(axes[:, 0], panels):
        entries = [e for e in summary if e["comparison"] == comparison]
        for offset, side in ((-0.19, "baseline"), (0.19, "elmo")):
            means = [100 * statistics.mean(e[side]["values"]) for e in entries]
            stds = [100 * (statistics.stdev(e[side]["values"]) if len(e[side]["values"]) > 1 else 0) for e in entries]
            ax.bar([i + offset for i in range(len(entries))], means, 0.38, yerr=stds, capsize=3,
                   label="baseline" if side == "baseline" else "+ ELMo")
        ax.set_xticks(range(len(entries)), [f"{e['task']}\n{LABELS[e['metric']]}" for e in entries], fontsize=8)
        ax.set_ylabel("test score (%), mean ± std")
        ax.set_title(COMPARISONS[comparison]["title"], fontsize=10)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def search_table(metrics: Path) -> str:
    """The dev-search records of scripts/run_study.py, one row per (task, setting, system)."""
    records = [json.loads(path.read_text()) for path in sorted((metrics / "search").glob("*/*_seed*[0-9].json"))]
    lines = ["| dev set | setting | overrides | system | dev score (model selection) | at that step | best at step / steps "
             "| training time (s) |", "|---|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r["task"], r["variant"], r["system"])):
        others = ", ".join(f"{LABELS[k]} {100 * v:.2f}" for k, v in r["dev_other_scores"].items() if k in METRICS[r["task"]])
        pairs = zip(r["overrides"][::2], r["overrides"][1::2])
        overrides = "<br>".join(f"`{key[2:]}={value}`" for key, value in pairs) or "(the config as it is)"
        lines.append(f"| {r['task']} | {r['variant']} | {overrides} | {r['system']} | {100 * r['dev_score']:.2f} | "
                     f"{others} | {r['best_step']} / {r['steps']} | {r['train_seconds']:,.0f} |")
    return "\n".join(lines) if records else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metrics", type=Path)
    parser.add_argument("--readme", type=Path)
    args = parser.parse_args()
    root = Path.cwd().resolve()
    summary = summarise(args.metrics, root)
    if not summary:
        raise SystemExit(f"no task in {args.metrics} has metrics files for both systems yet")
    (args.metrics / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    tables = {c: f"**{COMPARISONS[c]['title']}**\n\n{score_table([e for e in summary if e['comparison'] == c])}"
              for c in COMPARISONS if any(e["comparison"] == c for e in summary)}
    budget = budget_table(summary)
    if budget:
        budget = f"**The static vectors pair as the budget grows (baseline → + ELMo, relative error reduction)**\n\n{budget}"
    text = "\n\n".join([*tables.values(), *filter(None, [budget]), speed_table(args.metrics)]) + "\n"
    (args.metrics / "results.md").write_text(text)
    others = "; ".join(COMPARISONS[c]["title"] for c in tables if c not in README_COMPARISONS)
    readme_text = "\n\n".join([*(tables[c] for c in README_COMPARISONS if c in tables), *filter(None, [budget]),
                                f"Every table (also: {others}) and per run the training time, words/s and where the dev "
                                f"score peaked: [{args.metrics}/results.md]({args.metrics}/results.md)."]) + "\n"
    chart(summary, args.metrics / "results.png")
    print(text)
    search = search_table(args.metrics)
    if search:
        (args.metrics / "search.md").write_text(search + "\n")
    if args.readme:
        readme = args.readme.read_text()
        if START not in readme or END not in readme:
            raise SystemExit(f"{args.readme} has no {START} ... {END} markers")
        head, rest = readme.split(START, 1)
        args.readme.write_text(f"{head}{START}\n{readme_text}{END}{rest.split(END, 1)[1]}")


if __name__ == "__main__":
    main()
