"""Throughput and peak memory of the biLM against a per-time-step baseline (see README.md here).

    python benchmarks/bench_bilm.py [--sentences 2000] [--original-sentences 500] [--out results.json]
    python benchmarks/bench_bilm.py --sizes original,transformer   # transformer ELMo: ours only, no baseline
    python benchmarks/bench_bilm.py --precisions fp32,fp16,bf16,int8     # ours in each run-time precision
    python benchmarks/bench_bilm.py --before main --threads 1,2          # also ours as of git revision main

Each (model size, implementation, batch size) runs in a fresh subprocess so its peak RSS is its own.
The baseline shares our module's weights and does the same math the straightforward way, as the
AllenNLP reference does: dense char ids with the char CNN on every padded position, and per LSTM
direction a time loop that computes the input product inside the loop (rows sorted by length, the
active batch shrinking as rows end). Its batches come in file order, as `allennlp elmo` made them. The baseline runs in fp32 only; ours runs
once per --precisions entry (spacy_elmo.bilm.precision; accuracy: precision_accuracy.py). With --before REV
ours also runs in fp32 from the spacy_elmo package of git revision REV (exported to a temporary folder and put
first on the worker's PYTHONPATH; REV must have this script's module names, as every revision since the
packed products has), right
after the baseline and before this tree's precisions, so the before/after pair shares the machine's conditions.
Workers inherit the environment, so ISA caps (ATEN_CPU_CAPABILITY, DNNL_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS,
FBGEMM_ENABLE_INSTRUCTIONS) apply to every configuration and are recorded in the output.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from common import read_conllu
from spacy_elmo.bilm.interface import ContextualBiLM
from spacy_elmo.bilm.kinds import LSTM, TRANSFORMER
from spacy_elmo.bilm.lstm_bilm import LstmBiLM
from spacy_elmo.bilm.char_cnn import PADDING_ID
from spacy_elmo.bilm.char_ids import BOS, EOS, CharBatch, batch_to_ids
from spacy_elmo.bilm.batching import batch_layers, length_batches
from spacy_elmo.embedder import Embedder
from spacy_elmo.bilm.lstm import BiLstmLayer
from spacy_elmo.bilm.options import PUBLISHED_FILTERS, LstmOptions
from spacy_elmo.bilm.precision import check_precision
from spacy_elmo.bilm.transformer_bilm import TransformerBiLM, TransformerOptions

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "assets" / "ud-english-ewt" / "en_ewt-ud-dev.conllu"   # `spacy project assets` or `project run data`
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
SIZES = {
    "small": dict(lstm_dim=1024, projection_dim=128, n_highway=1),
    "medium": dict(lstm_dim=2048, projection_dim=256, n_highway=1),
    "original": dict(lstm_dim=4096, projection_dim=512, n_highway=2),
}
TRANSFORMER_SIZES = {"transformer": dict(input_dim=512, hidden_dim=2048, n_layers=6, n_highway=2, n_heads=8)}
LARGE_SIZES = ("original", "transformer")


def random_bilm(size: str) -> ContextualBiLM:
    torch.manual_seed(0)
    if size in TRANSFORMER_SIZES:
        options = TransformerOptions(filters=PUBLISHED_FILTERS, char_embedding_dim=16, **TRANSFORMER_SIZES[size])
        return TransformerBiLM(options).eval()
    options = LstmOptions(filters=tuple(PUBLISHED_FILTERS), char_embedding_dim=16, n_layers=2, **SIZES[size])
    return LstmBiLM(options).eval()


def _baseline_direction(layer: BiLstmLayer, d: int, x: torch.Tensor, lengths: torch.Tensor,
                        forward: bool) -> torch.Tensor:
    """One direction, rows sorted by decreasing length; the input product is taken inside the loop."""
    batch, steps, _ = x.shape
    cell = x.new_zeros(batch, layer.cell_dim)
    hidden = x.new_zeros(batch, layer.hidden_dim)
    out = x.new_zeros(batch, steps, layer.hidden_dim)
    for step in range(steps):
        t = step if forward else steps - 1 - step
        n = int((lengths > t).sum())
        gates = x[:n, t] @ layer.w_input[d] + hidden[:n] @ layer.w_hidden[d] + layer.bias[d]
        i, j, f, o = gates.chunk(4, dim=-1)
        new_cell = torch.sigmoid(f + 1.0) * cell[:n] + torch.sigmoid(i) * torch.tanh(j)
        if layer.cell_clip is not None:
            new_cell = new_cell.clamp(-layer.cell_clip, layer.cell_clip)
        new_hidden = torch.sigmoid(o) * torch.tanh(new_cell)
        if layer.w_proj is not None:
            new_hidden = new_hidden @ layer.w_proj[d]
        if layer.proj_clip is not None:
            new_hidden = new_hidden.clamp(-layer.proj_clip, layer.proj_clip)
        cell, hidden = cell.clone(), hidden.clone()
        cell[:n], hidden[:n], out[:n, t] = new_cell, new_hidden, new_hidden
    return out


def baseline_layers(bilm: LstmBiLM, sentences: Sequence[Sequence[str]]) -> torch.Tensor:
    """(N + 1, B, T + 2, 2P) like LstmBiLM.forward, computed the straightforward way."""
    ids = torch.from_numpy(batch_to_ids([[BOS, *s, EOS] for s in sentences], bilm.options.max_characters_per_token))
    batch, steps, width = ids.shape
    tokens = bilm.char_cnn(ids.view(batch * steps, width)).view(batch, steps, -1)
    lengths = (ids[:, :, 0] > 0).sum(dim=1)
    mask = (torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)
    order = torch.argsort(lengths, descending=True)
    x, lengths = tokens[order] * mask[order], lengths[order]
    layers = [torch.cat([x, x], dim=-1)]
    streams = [x, x]
    for depth, layer in enumerate(bilm.lstm.layers):
        outs = [_baseline_direction(layer, d, streams[d], lengths, forward=d == 0) for d in range(2)]
        if bilm.lstm.use_skip_connections and depth > 0:
            outs = [out + inp for out, inp in zip(outs, streams)]
        layers.append(torch.cat(outs, dim=-1))
        streams = outs
    result = torch.stack(layers)
    return result[:, torch.argsort(order)]


def _lstm_flops(options: LstmOptions, lengths: np.ndarray) -> float:
    """The LSTM's input, recurrent and cell-projection products on real positions only (padding never
    reaches them)."""
    proj, cell = options.projection_dim, options.lstm_dim
    hidden = min(proj, cell)
    per_position = options.n_layers * 2 * (2 * (proj + hidden) * 4 * cell + (2 * cell * proj if proj < cell else 0))
    return int(lengths.sum()) * per_position


def _transformer_flops(options: TransformerOptions, lengths: np.ndarray) -> float:
    """Both directions' attention projections, scores, weighted sums and feed-forward products, on every
    padded position of the batch (attention runs on the padded rectangle)."""
    rows, steps, dim = len(lengths), int(lengths.max()), options.input_dim
    dense = 2 * 4 * dim * dim + 2 * 2 * dim * options.hidden_dim
    attention = 2 * 2 * steps * dim
    return 2 * options.n_layers * rows * steps * (dense + attention)


CONTEXTUAL_FLOPS = {LSTM.name: (_lstm_flops, False), TRANSFORMER.name: (_transformer_flops, True)}
"""Per biLM kind: the FLOPs of its contextual part, and whether its char CNN always ends in a projection
(the LSTM's only where the filters' width differs from the projection)."""


def _ours_flops(options, sentences: Sequence[Sequence[str]], batches: List[List[int]], cache_size: int) -> float:
    """FLOPs (2 per multiply-add) of the matrix products and convolutions our implementation executes:
    the char CNN (convolutions, highway, projection) on each batch's tokens missing from the Embedder's
    cache, over the trimmed character width, then the contextual part of the biLM."""
    dim = options.char_embedding_dim
    widest = max(w for w, _ in options.filters)
    output = options.output_dim // 2
    contextual, always_projects = CONTEXTUAL_FLOPS[options.kind]
    dense_cnn = options.n_highway * 2 * (2 * options.n_filters ** 2)
    if options.n_filters != output or always_projects:
        dense_cnn += 2 * options.n_filters * output
    cached: set = set()
    total = 0.0
    for group in batches:
        char_batch = CharBatch.from_sentences([sentences[i] for i in group], options.max_characters_per_token)
        missing = [row for row, token in enumerate(char_batch.tokens) if token not in cached]
        if missing:
            longest = int((char_batch.unique[missing] != PADDING_ID).sum(axis=1).max())
            width = min(options.max_characters_per_token, longest + widest - 1)
            conv = sum(2 * dim * w * n * (width - w + 1) for w, n in options.filters)
            total += len(missing) * (conv + dense_cnn)
        if len(cached) + len(missing) > cache_size:
            cached.clear()
        cached.update(char_batch.tokens[row] for row in missing)
        total += contextual(options, char_batch.lengths)
    return total


def _our_batches(sentences: Sequence[Sequence[str]], embedder: Embedder) -> List[List[int]]:
    """The batches Embedder.embed_sentences forms (length buckets inside chunks of 16 batches)."""
    chunk = embedder.batch_size * 16
    batches: List[List[int]] = []
    for start in range(0, len(sentences), chunk):
        lengths = [len(s) + 2 for s in sentences[start : start + chunk]]
        for group in length_batches(lengths, embedder.batch_size, embedder.max_batch_tokens):
            batches.append([start + i for i in group])
    return batches


def worker(size: str, impl: str, batch_size: int, n_sentences: int, precision: str = "fp32") -> Dict[str, float]:
    torch.set_num_threads(THREADS)
    sentences = read_conllu(DATA, n_sentences)
    bilm = random_bilm(size)
    embedder = Embedder(bilm, batch_size=batch_size, precision=precision)
    n_tokens = sum(len(s) for s in sentences)
    with torch.inference_mode():
        if impl == "ours":
            list(embedder.embed_sentences(sentences[:batch_size]))
            embedder.clear_cache()
            busy, own = _busy_seconds(), _own_seconds()
            start = time.perf_counter()
            for _ in embedder.embed_sentences(sentences):
                pass
            seconds = time.perf_counter() - start
        else:
            if impl == "baseline":
                batches = [list(range(i, min(i + batch_size, len(sentences))))
                           for i in range(0, len(sentences), batch_size)]
            else:
                batches = _our_batches(sentences, embedder)
            baseline_layers(bilm, sentences[:batch_size])
            busy, own = _busy_seconds(), _own_seconds()
            start = time.perf_counter()
            for group in batches:
                baseline_layers(bilm, [sentences[i] for i in group]).numpy()
            seconds = time.perf_counter() - start
    others = (_busy_seconds() - busy) - (_own_seconds() - own)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = dict(size=size, impl=impl, precision=precision, batch_size=batch_size, sentences=len(sentences), tokens=n_tokens,
                  seconds=seconds, tokens_per_s=n_tokens / seconds, cpu_seconds=usage.ru_utime + usage.ru_stime,
                  other_cpu_share=max(others, 0.0) / (seconds * os.cpu_count()),
                  peak_rss_mb=_peak_rss_mb())
    if impl == "ours":
        flops = _ours_flops(bilm.options, sentences, _our_batches(sentences, embedder), embedder.cache_size)
        result["gflop_per_s"] = flops / seconds / 1e9
    return result


def check_equal(size: str, n: int = 6) -> float:
    """Max abs difference of baseline and ours on a few sentences of different lengths."""
    torch.set_num_threads(THREADS)
    bilm = random_bilm(size)
    sentences = read_conllu(DATA, n)
    with torch.inference_mode():
        ours = batch_layers(bilm, CharBatch.from_sentences(sentences))
        base = baseline_layers(bilm, sentences)
    diff = float((ours - base).abs().max())
    assert diff < 1e-5, f"{size}: baseline and ours differ by {diff}"
    return diff


ISA_CAPS = ("ATEN_CPU_CAPABILITY", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "FBGEMM_ENABLE_INSTRUCTIONS")


def run_worker(size: str, impl: str, batch: int, n: int, precision: str, threads: int,
               code: Optional[Path] = None) -> Dict[str, float]:
    """One measurement in a fresh subprocess, so that its peak RSS is its own; `code` is another
    spacy_elmo tree to run (ours as of an earlier revision)."""
    env = dict(os.environ, BENCH_THREADS=str(threads), **({"PYTHONPATH": str(code)} if code else {}))
    cmd = [sys.executable, __file__, "--worker", size, impl, str(batch), str(n), precision]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout)


def export_revision(revision: str, into: Path) -> Path:
    """spacy_elmo/ as of git `revision`, written under `into`."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "spacy_elmo"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def cpu_model() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    torch.set_num_threads(THREADS)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9


def _load() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def _busy_seconds() -> float:
    """CPU seconds all processes on the machine have used (from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM; ru_maxrss would keep the parent's peak across exec)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def _own_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--original-sentences", type=int, default=500)
    parser.add_argument("--sizes", default="small,medium,original")
    parser.add_argument("--batch-sizes", default="32,64")
    parser.add_argument("--precisions", default="fp32", help="comma-separated: fp32, fp16, bf16, int8 (ours only)")
    parser.add_argument("--before", metavar="REV", help="Also time ours in fp32 as of this git revision")
    parser.add_argument("--bucketed-baseline-batch", type=int, default=32,
                        help="Also time the baseline on our length-sorted batches at this batch size (0: never)")
    parser.add_argument("--threads", default=str(THREADS), help="comma-separated torch thread counts")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", nargs=5, metavar=("SIZE", "IMPL", "BATCH", "N", "PRECISION"))
    args = parser.parse_args()
    if args.worker:
        size, impl, batch, n, precision = args.worker
        print(json.dumps(worker(size, impl, int(batch), int(n), precision)))
        return
    try:
        precisions = [check_precision(p, "--precisions") for p in args.precisions.split(",")]
    except ValueError as err:
        parser.error(str(err))
    with tempfile.TemporaryDirectory() as tmp:
        before = export_revision(args.before, Path(tmp)) if args.before else None
        runs = [measure(args, int(threads), precisions, before) for threads in args.threads.split(",")]
    record = dict(command=" ".join(sys.argv), cpu=cpu_model(), torch=torch.__version__,
                  isa_caps={key: os.environ[key] for key in ISA_CAPS if key in os.environ},
                  before=args.before, runs=runs)
    table = markdown(record)
    print(table)
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(table)


def measure(args: argparse.Namespace, threads: int, precisions: List[str], before: Optional[Path]) -> dict:
    """Every configuration at one thread count, with that count's torch.mm rate before and after."""
    global THREADS
    THREADS = threads
    rate = matmul_gflops()
    print(f"torch.mm 2048x2048 float32, {threads} threads: {rate:.1f} GFLOP/s; load average {_load()}", flush=True)
    rows = []
    for size in args.sizes.split(","):
        transformer = size in TRANSFORMER_SIZES
        if not transformer:
            print(f"{size}: baseline vs ours max abs diff {check_equal(size):.2e}", flush=True)
        n = args.original_sentences if size in LARGE_SIZES else args.sentences
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            baselines = {}
            bucketed = ["baseline-bucketed"] if batch == args.bucketed_baseline_batch else []
            for impl in [] if transformer else ["baseline", *bucketed]:
                baselines[impl] = run_worker(size, impl, batch, n, "fp32", threads)
            runs = [] if before is None else [("fp32 before", run_worker(size, "ours", batch, n, "fp32", threads, before))]
            runs += [(p, run_worker(size, "ours", batch, n, p, threads)) for p in precisions]
            base = baselines.get("baseline")
            for label, ours in runs:
                row = dict(size=size, batch_size=batch, threads=threads, precision=label, sentences=ours["sentences"],
                           tokens=ours["tokens"], ours_tokens_per_s=ours["tokens_per_s"],
                           baseline_tokens_per_s=base and base["tokens_per_s"],
                           speedup=base and ours["tokens_per_s"] / base["tokens_per_s"],
                           ours_peak_rss_mb=ours["peak_rss_mb"], baseline_peak_rss_mb=base and base["peak_rss_mb"],
                           ours_gflop_per_s=ours["gflop_per_s"], matmul_fraction=ours["gflop_per_s"] / rate,
                           other_cpu_share=max(p["other_cpu_share"] for p in [ours, *baselines.values()]))
                if "baseline-bucketed" in baselines:
                    row["bucketed_baseline_tokens_per_s"] = baselines["baseline-bucketed"]["tokens_per_s"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    rate_after = matmul_gflops()
    print(f"torch.mm rate after the runs: {rate_after:.1f} GFLOP/s; load average {_load()}")
    return dict(threads=threads, matmul_gflop_per_s=rate, matmul_gflop_per_s_after=rate_after, rows=rows)


def markdown(record: dict) -> str:
    caps = ", ".join(f"{k}={v}" for k, v in record["isa_caps"].items()) or "none (native)"
    lines = [f"CPU: {record['cpu']}; torch {record['torch']}; ISA caps: {caps}", ""]
    for run in record["runs"]:
        lines += [f"{run['threads']} thread(s): torch.mm 2048x2048 fp32 {run['matmul_gflop_per_s']:.1f} GFLOP/s "
                  f"before, {run['matmul_gflop_per_s_after']:.1f} after the runs", "",
                  "| size | batch | precision | tokens | ours tok/s | baseline tok/s | speedup | ours peak RSS MB "
                  "| ours GFLOP/s | of matmul rate | other CPU load |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in run["rows"]:
            def cell(key: str, spec: str = ".0f", suffix: str = "") -> str:
                return "-" if r.get(key) is None else f"{r[key]:{spec}}{suffix}"

            lines.append(f"| {r['size']} | {r['batch_size']} | {r['precision']} | {r['tokens']} "
                         f"| {cell('ours_tokens_per_s')} | {cell('baseline_tokens_per_s')} | {cell('speedup', '.2f', 'x')} "
                         f"| {cell('ours_peak_rss_mb')} | {cell('ours_gflop_per_s', '.1f')} "
                         f"| {100 * r['matmul_fraction']:.0f}% | {100 * r['other_cpu_share']:.0f}% |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
