"""Stage 3 of the bundled biLM on one GPU (`make stage3-train`): continue it on the stage 3 text (books,
in-domain train text and TweetEval tweets, `make stage3-corpus`), scoring held-out perplexity before and after,
within one short device lease. Results of the run that made the shipped weights: benchmarks/bundled_v3/.

    python scripts/train_stage3.py runs/v3 OUT --minutes 5

1. a 5-step smoke run of the same recipe beside --run (stops early, with its error, if the CUDA path is
   broken);
2. the softmax alone for --warmup-steps on the frozen bundled biLM (its export has no softmax), then
   held-out perplexity: the "before" figures, the shipped biLM under a softmax trained for it;
3. the whole model until --minutes of training in all (resumed from 2's checkpoint), then "after";
4. the export (options.json, weights.hdf5, the softmax split in two files under 16 MB) and the log in OUT.
The warm-up is capped at a third of --minutes, for a GPU slower than expected.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from spacy_elmo.hub.catalogue import BUNDLED_DIR as BUNDLED

HELDOUT = {
    "books": ["heldout-books/doyle__beyond-the-city.txt", "heldout-books/shelley__mathilda.txt",
              "heldout-books/burroughs__the-land-that-time-forgot.txt"],
    "christmas_carol": ["heldout-books/dickens__a-christmas-carol-in-prose-being-a-ghost-story-of-christmas.txt"],
    "ewt_dev": ["ewt-dev"],
    "tweets": ["heldout-tweets"],
}


def scores(run: Path, corpus: Path, device, batch_size: int) -> dict:
    from spacy_elmo.training.models import model_from_checkpoint
    from spacy_elmo.training.trainer import evaluate

    model, vocab, config = model_from_checkpoint(run)
    model.to(device)
    return {name: evaluate(model, vocab, [str(corpus / p) for p in paths], config, batch_size)
            for name, paths in HELDOUT.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--run", type=Path, default=Path("runs/v3/model"))
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--warmup-steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--init-from", type=Path, default=BUNDLED,
                        help="an export to continue; with its softmax.pt, --warmup-steps 0 scores it after one step")
    parser.add_argument("--eval-batch-size", type=int, default=64, help="rows of 20 tokens in held-out scoring")
    args = parser.parse_args()
    import torch

    from spacy_elmo.training.config import TrainConfig
    from spacy_elmo.training.export import export
    from spacy_elmo.training.trainer import train

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    record = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__}
    recipe = dict(train=[str(args.corpus / "train")], vocab=str(BUNDLED / "vocab.txt"), init_from=str(args.init_from),
                  softmax_warmup_steps=args.warmup_steps, batch_size=args.batch_size, unroll_steps=20,
                  n_negative_samples=4096, optimizer="adam", learning_rate=0.002, checkpoint_minutes=2.0,
                  log_every=20, seed=2, progress=False)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    smoke = train(TrainConfig(output=str(args.run.parent / "smoke-run"), max_steps=5, **{**recipe, "softmax_warmup_steps": 2}),
                  overwrite=True)
    record["smoke"] = smoke
    print("smoke", json.dumps(smoke), flush=True)
    train(TrainConfig(output=str(args.run), max_steps=max(args.warmup_steps, 1), max_minutes=args.minutes / 3, **recipe),
          overwrite=True)
    record["before"] = scores(args.run, args.corpus, device, args.eval_batch_size)
    print("before", json.dumps(record["before"]), flush=True)
    last = train(TrainConfig(output=str(args.run), max_minutes=args.minutes, **recipe), resume=True)
    record["last_step"] = last
    record["after"] = scores(args.run, args.corpus, device, args.eval_batch_size)
    print("after", json.dumps(record["after"]), flush=True)
    export(args.run, args.run.parent / "export", with_softmax=True, overwrite=True)
    record["seconds"] = round(time.time() - start, 1)
    (args.out / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    for name in ("options.json", "weights.hdf5"):
        shutil.copy(args.run.parent / "export" / name, args.out / name)
    softmax = (args.run.parent / "export" / "softmax.pt").read_bytes()
    half = len(softmax) // 2 + 1
    (args.out / "softmax.pt.0").write_bytes(softmax[:half])
    (args.out / "softmax.pt.1").write_bytes(softmax[half:])
    shutil.copy(args.run / "log.jsonl", args.out / "log.jsonl")


if __name__ == "__main__":
    main()
