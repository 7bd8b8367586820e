"""What each `store` setting of the `elmo` component costs: DocBin bytes per token (user data stored, as
`spacy apply` writes it), resident memory per 100k tokens of kept Docs, and `spacy benchmark speed`
words/s, all on one trained pipeline and one text; then a pipeline without ELMo for the `spacy apply`
size, and the resident memory every 100k tokens of `nlp.pipe` over >= 1M tokens whose Docs are discarded.

    python benchmarks/bench_store.py --elmo PIPELINE --baseline PIPELINE --book BOOK.txt --work DIR \
        --out benchmarks/results_store.json [--parts apply,kept,speed,flat]

Every measurement runs in its own subprocess (one torch thread, OMP_NUM_THREADS=1); speed runs go
round-robin over the settings, twice, so that every setting sees the same machine load.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import sys
import time
from itertools import cycle
from pathlib import Path
from typing import Dict, List

SETTINGS = {"auto": ("auto", "float32"), "layers": ("layers", "float32"), "layers-float16": ("layers", "float16"),
            "vectors": ("vectors", "float32"), "vectors-float16": ("vectors", "float16")}
"""Pipeline variants: name -> (store, store_dtype). With an NER listener, "auto" keeps nothing ("none")."""
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def rss_mb() -> float:
    """Resident memory of this process now (not the peak), MB = 2**20 bytes."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def excerpt(book: Path, n_chars: int) -> List[str]:
    """Paragraphs of the book's body (after Project Gutenberg's START marker) up to about `n_chars`."""
    text = book.read_text(encoding="utf8")
    start = re.search(r"^\*\*\* ?START OF.*$", text, flags=re.M)
    body = text[start.end() if start else 0 :]
    paragraphs, size = [], 0
    for block in re.split(r"\n\s*\n", body):
        paragraph = " ".join(block.split())
        if paragraph:
            paragraphs.append(paragraph)
            size += len(paragraph) + 2
        if size >= n_chars:
            break
    return paragraphs


def texts(path: Path) -> List[str]:
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf8").splitlines()]


def prepare(args: argparse.Namespace) -> Dict[str, Path]:
    """The excerpt as JSONL (for `spacy apply`) and as tokenized Docs (for `benchmark speed`), and one
    saved pipeline per setting: the trained one loaded with that `store` and saved again."""
    import spacy
    from spacy.tokens import DocBin

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    paragraphs = excerpt(args.book, args.chars)
    (work / "excerpt.jsonl").write_text("".join(json.dumps({"text": p}) + "\n" for p in paragraphs), encoding="utf8")
    tokenizer = spacy.blank("en")
    DocBin(docs=[tokenizer.make_doc(p) for p in paragraphs]).to_disk(work / "excerpt.spacy")
    pipelines = {}
    for name, (store, dtype) in SETTINGS.items():
        pipelines[name] = work / f"elmo-{name}"
        if not pipelines[name].exists():
            nlp = spacy.load(args.elmo, config={"components": {"elmo": {"store": store, "store_dtype": dtype}}})
            nlp.to_disk(pipelines[name])
    pipelines["no-elmo"] = args.baseline
    return pipelines


def run(cmd: List[str], log: Path) -> str:
    started = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    log.write_text(f"$ {' '.join(map(str, cmd))}\n{result.stdout}\n{result.stderr}\n"
                   f"exit {result.returncode} after {time.perf_counter() - started:.1f} s\n", encoding="utf8")
    if result.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed, see {log}")
    return result.stdout


def measure_apply(pipelines: Dict[str, Path], work: Path) -> Dict[str, dict]:
    """`spacy apply` over the excerpt: the output's bytes per token."""
    import spacy
    from spacy.tokens import DocBin

    vocab = spacy.blank("en").vocab
    found = {}
    for name, pipeline in pipelines.items():
        out = work / f"apply-{name}.spacy"
        started = time.perf_counter()
        run([sys.executable, "-m", "spacy", "apply", str(pipeline), str(work / "excerpt.jsonl"), str(out),
             "--batch-size", "64", "--force"], work / f"apply-{name}.log")
        seconds = time.perf_counter() - started
        n_tokens = sum(len(doc) for doc in DocBin().from_disk(out).get_docs(vocab))
        found[name] = {"bytes": out.stat().st_size, "tokens": n_tokens,
                       "bytes_per_token": round(out.stat().st_size / n_tokens, 1), "seconds": round(seconds, 1)}
        print(name, found[name], flush=True)
    return found


def resident_after_gc() -> float:
    """Resident memory once garbage is collected and glibc has given its free pages back."""
    import ctypes

    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_mb()


def two_passes(pipeline: str, jsonl: str, n_tokens: int, keep: bool) -> dict:
    """In a subprocess: `nlp.pipe` over `n_tokens` tokens of text with its Docs discarded, then over the
    same text again, keeping its Docs or not; the resident memory at the end, and the bytes of the
    arrays the kept Docs hold. The two runs differ only in the kept Docs, so the difference of their
    memory is what those Docs take (the biLM's working memory and the strings are in both)."""
    import numpy as np
    import spacy

    nlp = spacy.load(pipeline)
    paragraphs = texts(Path(jsonl))
    found = {}
    for keeping in (False, keep):
        docs, total = [], 0
        for doc in nlp.pipe(cycle(paragraphs), batch_size=64):
            total += len(doc)
            if keeping:
                docs.append(doc)
            if total >= n_tokens:
                break
        found = {"tokens": total, "rss_mb": round(resident_after_gc(), 1),
                 "array_mb": round(sum(value.nbytes for doc in docs for value in doc.user_data.values()
                                       if isinstance(value, np.ndarray)) / 2**20, 1)}
    return found


def measure_kept(pipelines: Dict[str, Path], work: Path, n_tokens: int) -> Dict[str, dict]:
    """Resident memory of kept Docs per 100k tokens: a run that keeps them minus one that does not."""
    found = {}
    for name, pipeline in pipelines.items():
        runs = {how: in_subprocess(how, pipeline, work / "excerpt.jsonl", n_tokens, work / f"kept-{name}-{how}.log")
                for how in ("discard", "keep")}
        per_100k = 100_000 / runs["keep"]["tokens"]
        grown = runs["keep"]["rss_mb"] - runs["discard"]["rss_mb"]
        found[name] = {"runs": runs, "rss_mb_per_100k_tokens": round(grown * per_100k, 1),
                       "kept_array_mb_per_100k_tokens": round(runs["keep"]["array_mb"] * per_100k, 1)}
        print(name, found[name], flush=True)
    return found


def flat(pipeline: str, jsonl: str, n_tokens: int) -> dict:
    """In a subprocess: resident memory every 100k tokens (a tenth of `n_tokens` if less) of
    `nlp.pipe` whose Docs are discarded."""
    import spacy

    nlp = spacy.load(pipeline)
    step = min(100_000, n_tokens // 10)
    marks, total, next_mark, started = [(0, round(rss_mb(), 1), 0.0)], 0, step, time.perf_counter()
    for doc in nlp.pipe(cycle(texts(Path(jsonl))), batch_size=64):
        total += len(doc)
        if total >= next_mark:
            marks.append((total, round(rss_mb(), 1), round(time.perf_counter() - started, 1)))
            next_mark += step
            if total >= n_tokens:
                break
    after_first = [rss for tokens, rss, _ in marks if tokens >= step]
    return {"store": nlp.get_pipe("elmo").store, "marks_tokens_rss_mb_seconds": marks,
            "growth_after_first_100k_mb": round(max(after_first) - after_first[0], 1)}


def in_subprocess(function: str, pipeline: Path, jsonl: Path, n_tokens: int, log: Path) -> dict:
    out = run([sys.executable, __file__, "--child", function, str(pipeline), str(jsonl), str(n_tokens)], log)
    return json.loads(out.strip().splitlines()[-1])


def measure_speed(pipelines: Dict[str, Path], work: Path, rounds: int) -> Dict[str, dict]:
    """`spacy benchmark speed` words/s (its mean), round-robin over the settings."""
    found: Dict[str, dict] = {name: {"words_per_s": []} for name in pipelines}
    for r in range(rounds):
        for name, pipeline in pipelines.items():
            out = run([sys.executable, "-m", "spacy", "benchmark", "speed", str(pipeline), str(work / "excerpt.spacy"),
                       "--batch-size", "16", "--batches", "30", "--warmup", "0"], work / f"speed-{name}-{r}.log")
            mean = re.search(r"Mean:\s*([\d.,]+) words/s", out)
            found[name]["words_per_s"].append(float(mean.group(1).replace(",", "")))
            print(name, found[name], flush=True)
    for value in found.values():
        value["mean"] = round(sum(value["words_per_s"]) / len(value["words_per_s"]))
    return found


def child(function: str, pipeline: str, jsonl: str, n_tokens: str) -> None:
    """What `in_subprocess` runs: `bench_store.py --child FUNCTION PIPELINE JSONL TOKENS`, one JSON line out."""
    if function == "flat":
        print(json.dumps(flat(pipeline, jsonl, int(n_tokens))))
    else:
        print(json.dumps(two_passes(pipeline, jsonl, int(n_tokens), keep=function == "keep")))


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:6])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--elmo", type=Path, required=True,
                        help="a trained pipeline with an `elmo` component feeding listeners")
    parser.add_argument("--baseline", type=Path, required=True, help="the same task trained without ELMo")
    parser.add_argument("--book", type=Path, required=True, help="a Project Gutenberg text")
    parser.add_argument("--chars", type=int, default=300_000, help="excerpt size in characters")
    parser.add_argument("--work", type=Path, required=True, help="folder for the excerpt, pipelines and outputs")
    parser.add_argument("--out", type=Path, required=True, help="results JSON (parts already there are kept)")
    parser.add_argument("--parts", default="apply,kept,speed,flat")
    parser.add_argument("--kept-tokens", type=int, default=100_000)
    parser.add_argument("--flat-tokens", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    cpu = re.search(r"Model name:\s*(.+)", subprocess.run(["lscpu"], capture_output=True, text=True).stdout)
    results["machine"] = {"cpu": cpu.group(1) if cpu else "?", "cores": os.cpu_count(), "torch_threads": 1}
    pipelines = prepare(args)
    jsonl = args.work / "excerpt.jsonl"
    results["text"] = {"book": args.book.name, "chars": args.chars, "paragraphs": len(texts(jsonl))}
    for part in args.parts.split(","):
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        if part == "apply":
            found = measure_apply(pipelines, args.work)
        elif part == "kept":
            found = measure_kept(pipelines, args.work, args.kept_tokens)
        elif part == "speed":
            found = measure_speed(pipelines, args.work, args.rounds)
        elif part == "flat":
            found = in_subprocess("flat", pipelines["auto"], jsonl, args.flat_tokens, args.work / "flat.log")
        else:
            raise SystemExit(f"--parts: unknown part {part!r}; choose from apply, kept, speed, flat")
        results[part] = {"started": started, **found}
        print(part, json.dumps(found), flush=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
