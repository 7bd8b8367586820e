"""How fast each CPU kernel torch offers runs the per-time-step products of an original-size biLM, in isolation.

    python benchmarks/product_shapes.py --threads 1 2 --out benchmarks/results_product_shapes.json
    ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 FBGEMM_ENABLE_INSTRUCTIONS=AVX2 \
        python benchmarks/product_shapes.py ...   # the same kernels capped to AVX2, as on an AVX2-only CPU

Inside the LSTM the products cannot be batched over time: every step multiplies the running rows (at most
the batch size) by the whole recurrent (512 x 16384) and cell-projection (4096 x 512) weights of both
directions. This script times those products alone, kernels interleaved round by round so they share the
machine's conditions, as shares of the same run's fp32 `torch.mm` rate (2048 x 2048), with each kernel's
cosine to an fp64 product:

- bmm: today's batched product of both directions (`baddbmm` / `bmm`, weights (2, K, N));
- addmm: one product per direction, weights (K, N);
- mkl-packed: MKL's packed GEMM (`torch.ops.mkl._mkl_linear`), weights packed once;
- onednn-packed: oneDNN's linear with weights reordered once (`torch.ops.mkldnn._linear_pointwise`);
- fp16: fbgemm's fp16-weight linear with fp32 accumulation (`quantized.linear_dynamic_fp16`), packed once;
- int8: fbgemm's dynamic int8 linear (per-channel weights), packed once.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict

import torch

SHAPES = {"recurrent": (512, 16384), "cell projection": (4096, 512)}
CAP_ENV = ("ATEN_CPU_CAPABILITY", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "FBGEMM_ENABLE_INSTRUCTIONS")


def kernels(x: torch.Tensor, weight: torch.Tensor, add: torch.Tensor) -> Dict[str, Callable[[], torch.Tensor]]:
    """Each kernel's add + x @ weight for x (2, m, K), weight (2, K, N), add (2, m, N); packing done here."""
    m = x.shape[1]
    w_t = [w.t().contiguous() for w in weight]
    mkl = [torch.ops.mkl._mkl_reorder_linear_weight(w, m) for w in w_t]
    onednn = [torch.ops.mkldnn._reorder_linear_weight(w, m) for w in w_t]
    fp16 = [torch.ops.quantized.linear_prepack_fp16(w, None) for w in w_t]
    scales = [(w.abs().amax(dim=1) / 127).double() for w in w_t]
    zero = torch.zeros(w_t[0].shape[0], dtype=torch.long)
    int8 = [torch.ops.quantized.linear_prepack(torch.quantize_per_channel(w, s, zero, 0, torch.qint8), None)
            for w, s in zip(w_t, scales)]
    return {
        "bmm": lambda: torch.baddbmm(add, x, weight),
        "addmm": lambda: torch.stack([torch.addmm(add[d], x[d], weight[d]) for d in range(2)]),
        "mkl-packed": lambda: torch.stack([torch.ops.mkl._mkl_linear(x[d], mkl[d], w_t[d], None, m) + add[d]
                                           for d in range(2)]),
        "onednn-packed": lambda: torch.stack([
            torch.ops.mkldnn._linear_pointwise(x[d], onednn[d], None, "none", [], "") + add[d] for d in range(2)]),
        "fp16": lambda: torch.stack([torch.ops.quantized.linear_dynamic_fp16(x[d], fp16[d]) + add[d]
                                     for d in range(2)]),
        "int8": lambda: torch.stack([torch.ops.quantized.linear_dynamic(x[d], int8[d], True) + add[d]
                                     for d in range(2)]),
    }


def seconds(fn: Callable[[], object], repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def measure(threads: int, rows: list, repeats: int, rounds: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    mm = lambda: a @ b  # noqa: E731
    mm()
    results = []
    mm_times = []
    for name, (k, n) in SHAPES.items():
        weight = torch.randn(2, k, n) / k ** 0.5
        for m in rows:
            x, add = torch.randn(2, m, k), torch.randn(2, m, n)
            exact = (torch.baddbmm(add.double(), x.double(), weight.double())).flatten()
            fns = kernels(x, weight, add)
            times: Dict[str, list] = {key: [] for key in fns}
            for fn in fns.values():
                fn()
            for _ in range(rounds):
                mm_times.append(seconds(mm, 2))
                for key, fn in fns.items():
                    times[key].append(seconds(fn, repeats))
            for key, fn in fns.items():
                cosine = float(torch.nn.functional.cosine_similarity(fn().double().flatten() - add.double().flatten(),
                                                                     exact - add.double().flatten(), dim=0))
                results.append({"product": name, "k": k, "n": n, "rows": m, "kernel": key,
                                "gflop_per_s": 2 * 2 * m * k * n / min(times[key]) / 1e9, "cosine": cosine})
    rate = 2 * 2048 ** 3 / min(mm_times) / 1e9
    for r in results:
        r["of_mm2048"] = r["gflop_per_s"] / rate
    return {"threads": threads, "mm2048_gflop_per_s": rate, "products": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rows", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the fastest counts")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    capped = {key: os.environ[key] for key in CAP_ENV if key in os.environ}
    record = {"command": " ".join(sys.argv), "isa_caps": capped, "torch": torch.__version__,
              "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "cpu": subprocess.run(["lscpu"], capture_output=True, text=True).stdout.split("Model name:")[-1]
              .splitlines()[0].strip(), "runs": []}
    for threads in args.threads:
        run = measure(threads, args.rows, args.repeats, args.rounds)
        record["runs"].append(run)
        print(f"{threads} thread(s): torch.mm 2048 {run['mm2048_gflop_per_s']:.1f} GFLOP/s", flush=True)
        for r in run["products"]:
            print(f"  {r['product']:16s} rows {r['rows']:4d} {r['kernel']:14s} {r['gflop_per_s']:7.1f} GFLOP/s "
                  f"= {100 * r['of_mm2048']:4.0f} %  cosine {r['cosine']:.6f}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
