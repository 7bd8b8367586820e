"""How fast torch's own fp32 kernels run the products an original-size biLM executes, in isolation.

    python benchmarks/product_shapes.py --threads 2 --out benchmarks/results_product_shapes_2threads.json

Issue 11 asks the fp32 path to reach 75 % of the machine's matmul rate (torch.mm of two 2048x2048 matrices).
Inside the LSTM the products cannot be batched over time: every step multiplies the running rows (at most
the batch size) by the whole recurrent (512 x 16384) and cell-projection (4096 x 512) weights of both
directions. This script times exactly those products alone, so the whole-model rate of bench_bilm.py can be
compared with what the kernels themselves give at those shapes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

SHAPES = {"recurrent (baddbmm)": (512, 16384), "cell projection (bmm)": (4096, 512)}


def gflops(fn, flops: float, repeats: int) -> float:
    fn()
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return flops * repeats / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    reference = gflops(lambda: a @ b, 2 * 2048 ** 3, 5)
    rows = []
    for name, (k, n) in SHAPES.items():
        weight = torch.randn(2, k, n) * 0.01
        for m in args.rows:
            x, add = torch.randn(2, m, k), torch.randn(2, m, n)
            fn = (lambda: torch.baddbmm(add, x, weight)) if name.startswith("recurrent") else (lambda: torch.bmm(x, weight))
            rate = gflops(fn, 2 * 2 * m * k * n, args.repeats)
            rows.append({"product": name, "k": k, "n": n, "rows": m, "gflop_per_s": round(rate, 1),
                         "of_mm2048": round(rate / reference, 3)})
            print(f"{name:24s} rows {m:4d}: {rate:6.1f} GFLOP/s = {100 * rate / reference:3.0f} % of torch.mm 2048",
                  flush=True)
    reference_after = gflops(lambda: a @ b, 2 * 2048 ** 3, 5)
    record = {"command": " ".join(sys.argv), "threads": args.threads, "torch": torch.__version__,
              "mm2048_gflop_per_s": round(reference, 1), "mm2048_gflop_per_s_after": round(reference_after, 1),
              "products": rows}
    print(json.dumps(record, indent=1))
    if args.out:
        args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
