"""The ELMo-vs-baseline results from the per-run metrics files of scripts/run_comparison.py.

    python scripts/results_table.py metrics --readme README.md

Writes metrics/summary.json (one entry per task and metric: both systems' config and run files,
and the relative error reduction of the means), metrics/results.md (mean ± standard deviation
per metric, training time and words/s per run) and metrics/results.png; with --readme, puts the
tables into README.md between the markers <!-- results:start --> and <!-- results:end -->.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Dict, List, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METRICS = {"ewt": ["pos_acc", "tag_acc", "morph_acc", "dep_uas", "dep_las"],
           "wnut17": ["ents_p", "ents_r", "ents_f"]}
CONFIGS = {"ewt": "tagger_parser", "wnut17": "ner"}
LABELS = {"pos_acc": "UPOS", "tag_acc": "XPOS (TAG)", "morph_acc": "morph", "dep_uas": "UAS", "dep_las": "LAS",
          "ents_p": "entity P", "ents_r": "entity R", "ents_f": "entity F"}
TEST_SETS = {"ewt": "UD English-EWT test", "wnut17": "WNUT-17 emerging.test.annotated"}
SYSTEMS = ("baseline", "elmo")
START, END = "<!-- results:start -->", "<!-- results:end -->"


def runs_of(metrics: Path, task: str, system: str) -> List[Path]:
    return sorted((metrics / task).glob(f"{system}_seed*[0-9].json"))


def mean_std(values: List[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * std:.2f}"


def rer(baseline: float, elmo: float) -> Optional[float]:
    """Relative error reduction of ELMo over the baseline, in percent (scores are fractions)."""
    error = 1 - baseline
    return None if error <= 0 else 100 * (error - (1 - elmo)) / error


def speeds(train_log: Path) -> Dict[str, Optional[float]]:
    """Words/s of epoch 1 and of epochs 2+, from the evaluation records (evaluation time included)."""
    records = [json.loads(line) for line in train_log.read_text().splitlines() if line.strip()]
    first = [r for r in records if r["epoch"] == 0]
    later = [r for r in records if r["epoch"] > 0]
    epoch1 = first[-1]["words"] / first[-1]["seconds"] if first and first[-1]["seconds"] else None
    epoch2 = None
    if first and len(later) > 0 and later[-1]["seconds"] > first[-1]["seconds"]:
        epoch2 = (later[-1]["words"] - first[-1]["words"]) / (later[-1]["seconds"] - first[-1]["seconds"])
    return {"epoch1": epoch1, "epoch2+": epoch2, "steps": records[-1]["step"] if records else None}


def summarise(metrics: Path, root: Path) -> List[dict]:
    summary = []
    for task, keys in METRICS.items():
        runs = {system: runs_of(metrics, task, system) for system in SYSTEMS}
        if not all(runs.values()):
            continue
        scores = {system: [json.loads(path.read_text()) for path in runs[system]] for system in SYSTEMS}
        for key in keys:
            entry = {"task": task, "metric": key}
            for system in SYSTEMS:
                values = [s[key] for s in scores[system]]
                entry[system] = {"config": f"configs/{system}_{CONFIGS[task]}.cfg",
                                 "runs": [str(path.resolve().relative_to(root)) for path in runs[system]],
                                 "mean": statistics.mean(values), "values": values}
            entry["rer"] = rer(entry["baseline"]["mean"], entry["elmo"]["mean"])
            summary.append(entry)
    return summary


def score_table(summary: List[dict]) -> str:
    lines = ["| test set | metric | baseline (spaCy features) | + ELMo | relative error reduction |",
             "|---|---|---|---|---|"]
    for entry in summary:
        base, elmo = entry["baseline"], entry["elmo"]
        change = "n/a" if entry["rer"] is None else f"{entry['rer']:+.1f} %"
        lines.append(f"| {TEST_SETS[entry['task']]} | {LABELS[entry['metric']]} | {mean_std(base['values'])} "
                     f"(n={len(base['values'])}) | {mean_std(elmo['values'])} (n={len(elmo['values'])}) | {change} |")
    return "\n".join(lines)


def speed_table(metrics: Path) -> str:
    lines = ["| test set | system | seed | training time (s) | steps | words/s epoch 1 | words/s epoch 2+ |",
             "|---|---|---|---|---|---|---|"]
    for task in METRICS:
        for system in SYSTEMS:
            for path in runs_of(metrics, task, system):
                run = json.loads(path.with_name(path.stem + ".run.json").read_text())
                speed = speeds(path.with_name(path.stem + ".train.jsonl"))
                cells = [f"{speed[k]:,.0f}" if speed[k] else "n/a" for k in ("epoch1", "epoch2+")]
                lines.append(f"| {TEST_SETS[task]} | {system} | {run['seed']} | {run['train_seconds']:,.0f} | "
                             f"{speed['steps']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def chart(summary: List[dict], path: Path) -> None:
    labels = [f"{entry['task']}\n{LABELS[entry['metric']]}" for entry in summary]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(summary)), 4))
    width = 0.38
    for offset, system in ((-width / 2, "baseline"), (width / 2, "elmo")):
        means = [100 * statistics.mean(e[system]["values"]) for e in summary]
        stds = [100 * (statistics.stdev(e[system]["values"]) if len(e[system]["values"]) > 1 else 0) for e in summary]
        ax.bar([i + offset for i in range(len(summary))], means, width, yerr=stds, capsize=3,
               label="baseline (spaCy features)" if system == "baseline" else "+ ELMo")
    ax.set_xticks(range(len(summary)), labels, fontsize=8)
    ax.set_ylabel("test score (%), mean ± std over seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
    text = f"{score_table(summary)}\n\n{speed_table(args.metrics)}\n"
    (args.metrics / "results.md").write_text(text)
    chart(summary, args.metrics / "results.png")
    print(text)
    if args.readme:
        readme = args.readme.read_text()
        if START not in readme or END not in readme:
            raise SystemExit(f"{args.readme} has no {START} ... {END} markers")
        head, rest = readme.split(START, 1)
        args.readme.write_text(f"{head}{START}\n{text}{END}{rest.split(END, 1)[1]}")


if __name__ == "__main__":
    main()
