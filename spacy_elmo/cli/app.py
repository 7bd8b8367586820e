"""Command line: `python -m spacy_elmo COMMAND` (also `spacy elmo COMMAND`)."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import typer

from ..bilm.settings import BATCH_SIZE, PRECISION, PRECISIONS
from ..training.config import TrainConfig, check_resume, default, flag
from ..training.corpus import FORMATS, read_sentences, tokenize_files, write_shards
from ..training.kinds import KINDS
from ..training.vocab import Vocab
from .boundary import DEBUG_ENV, ElmoTyper
from .embed_file import LAYER_CHOICES, PART_LINES, embed_file
from .params import (at_least, choice, default_of, filters as check_filters, given, parse_filters, plural, split_list,
                     within)

app = ElmoTyper(name="elmo", help="ELMo biLMs: embed text, build vocabularies, pretrain, evaluate, export. "
                f"Errors are one line; set {DEBUG_ENV}=1 for the traceback.",
                no_args_is_help=True, add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)


@app.command("prepare")
def prepare_command(
    inputs: list[str] = typer.Argument(..., help="Text files, directories or globs"),
    output: str = typer.Option(..., "--output", "-o", help="Directory for the shards"),
    fmt: str = typer.Option(default_of(tokenize_files, "fmt"), "--format", callback=choice(*FORMATS),
                            help="raw (running text), lines (one raw sentence per line) or tokens"),
    lang: str = typer.Option(default_of(tokenize_files, "lang"),
                             help="spaCy language whose tokenizer and sentencizer split raw text"),
    gutenberg: bool = typer.Option(False, help="Keep only the text between Project Gutenberg START/END markers"),
    n_shards: int = typer.Option(default_of(write_shards, "n_shards"), callback=at_least(1),
                                 help="Number of shard files (at least the number of training processes)"),
    n_process: int = typer.Option(default_of(tokenize_files, "n_process"), callback=at_least(1),
                                  help="Tokenising processes"),
    seed: int = typer.Option(default_of(write_shards, "seed"), callback=at_least(0)),
    overwrite: bool = typer.Option(False, help="Replace an existing output directory"),
) -> None:
    """Tokenise text once into shuffled shards of one sentence per line, the input of `vocab` and `pretrain`."""
    from ..atomic import check_target

    check_target(output, is_dir=True, overwrite=overwrite, inputs=inputs, flag="--output")
    per_file = tokenize_files(inputs, fmt, lang, gutenberg, n_process)
    lines = [line for file_lines in per_file.values() for line in file_lines]
    paths = write_shards(lines, output, n_shards, seed, overwrite=overwrite)
    typer.echo(f"{plural(len(lines), 'sentence')}, {plural(sum(len(x.split()) for x in lines), 'token')} from "
               f"{plural(len(per_file), 'file')} -> {plural(len(paths), 'shard')} in {output}")


@app.command("vocab")
def vocab_command(
    inputs: list[str] = typer.Argument(..., help="Tokenised text: files, directories or globs"),
    output: str = typer.Option(..., "--output", "-o", help="Vocabulary file to write"),
    max_size: int = typer.Option(default_of(Vocab.build, "max_size"), callback=at_least(4),
                                 help="Vocabulary size including <S>, </S>, <UNK>"),
    min_count: int = typer.Option(default_of(Vocab.build, "min_count"), callback=at_least(1),
                                  help="Drop tokens seen fewer times"),
    fmt: str = typer.Option(default_of(read_sentences, "fmt"), "--format", callback=choice(*FORMATS),
                            help="tokens, lines or raw (see `prepare`)"),
    lang: str = typer.Option(default_of(read_sentences, "lang")),
) -> None:
    """Build a frequency-sorted softmax vocabulary (<S>, </S>, <UNK> first) from text."""
    from ..atomic import check_target
    from ..training.corpus import expand_paths

    check_target(output, inputs=inputs, flag="--output")
    sentences = (s for path in expand_paths(inputs) for s in read_sentences(path, fmt, lang))
    vocab = Vocab.build(sentences, max_size, min_count)
    vocab.to_file(output)
    typer.echo(f"{len(vocab)} tokens -> {output}")


def setting(name: str, *flags: str, help: str = "") -> Any:
    """The `pretrain` option of the training setting `name`, with the default and the bound or choices
    that TrainConfig gives it; for a setting whose default depends on the biLM kind, --help says each."""
    callback = _check(TrainConfig.__dataclass_fields__[name].metadata)
    owners = [kind for kind in KINDS.values() if name in kind.defaults]
    if len(owners) == 1:
        return typer.Option(None, *flags, callback=callback,
                            help=f"{help} ({owners[0].name} only; default {owners[0].defaults[name]})")
    if owners:
        per_kind = ", ".join(f"{kind.defaults[name]} for {kind.name}" for kind in owners)
        return typer.Option(None, *flags, callback=callback, help=f"{help} (default: {per_kind})")
    return typer.Option(default(name), *flags, callback=callback, help=help or None)


def _check(spec: Mapping[str, Any]) -> Optional[Callable[[Any], Any]]:
    """The click callback of a setting's choices, integer bound or float interval."""
    if spec.get("choices"):
        return choice(*spec["choices"])
    if spec.get("low") is not None:
        return at_least(spec["low"])
    if spec.get("interval"):
        return within(spec["interval"])
    return None


@app.command("pretrain")
def pretrain_command(
    ctx: typer.Context,
    train: list[str] = typer.Argument(None, help="Training text (shards): files, directories or globs"),
    output: str = typer.Option(..., "--output", "-o", help="Run directory (checkpoint, log, plot)"),
    vocab: str = typer.Option(None, help="Vocabulary file (from `vocab`)"),
    resume: bool = typer.Option(False, help="Continue the run in --output exactly where its checkpoint stopped"),
    overwrite: bool = typer.Option(False, help="Replace the run already in --output (default: refuse)"),
    init_from: str = typer.Option(None, help="Start from a run directory, checkpoint or export (same vocabulary), "
                                                "or a published model by name (see `models`)"),
    softmax_warmup_steps: int = setting("softmax_warmup_steps", help="Train only the softmax for this many first "
                                        "steps (the biLM holds still): for --init-from without a softmax"),
    heldout: str = typer.Option("", help="Comma-separated held-out files/dirs to evaluate at the end"),
    fmt: str = setting("fmt", "--format", help=f"{', '.join(FORMATS)} (see `prepare`)"),
    lang: str = setting("lang"),
    bilm: str = setting("bilm", help=" or ".join(f"{kind.name} ({kind.summary})" for kind in KINDS.values())),
    lstm_dim: int = setting("lstm_dim", help="LSTM cell size"),
    projection_dim: int = setting("projection_dim", help="LSTM projection size"),
    input_dim: int = setting("input_dim", help="Char projection and model width (even, a multiple of --n-heads)"),
    hidden_dim: int = setting("hidden_dim", help="Feed-forward size"),
    n_heads: int = setting("n_heads", help="Attention heads (`export` needs 8, AllenNLP's number)"),
    n_layers: int = setting("n_layers", help="LSTM or transformer layers per direction"),
    filters: str = typer.Option(",".join(f"{w}:{n}" for w, n in default("filters")), callback=check_filters,
                                help="width:count pairs of the char CNN"),
    char_embedding_dim: int = setting("char_embedding_dim", flag("char_embedding_dim")),
    n_highway: int = setting("n_highway"),
    dropout: float = setting("dropout"),
    batch_size: int = setting("batch_size"),
    unroll_steps: int = setting("unroll_steps", help="Positions per batch row: bilm-tf's unroll steps (lstm), or the "
                                                     "row that whole sentences are packed into (transformer)"),
    n_negative_samples: int = setting("n_negative_samples"),
    optimizer: str = setting("optimizer", help="adam, or adagrad (bilm-tf's; with --learning-rate 0.2)"),
    learning_rate: float = setting("learning_rate"),
    clip_norm: float = setting("clip_norm"),
    max_steps: int = setting("max_steps", help="Stop after this many steps (0: no limit)"),
    max_minutes: float = setting("max_minutes", help="Stop cleanly after this much training time (0: no limit)"),
    checkpoint_every: int = setting("checkpoint_every"),
    checkpoint_minutes: float = setting("checkpoint_minutes"),
    log_every: int = setting("log_every"),
    eval_batch_size: int = setting("eval_batch_size"),
    seed: int = setting("seed"),
    threads: int = setting("threads", help="torch threads (0: torch's default)"),
    precision: str = setting("precision", help="fp32, or bf16: mixed precision (bf16 products, fp32 weights, "
                             "optimizer, LSTM state and loss; fast only on CPUs with bf16 instructions and GPUs)"),
) -> None:
    """Train a biLM (LSTM the bilm-tf way, or transformer); Ctrl-C saves a checkpoint. Works under
    `torchrun --nproc_per_node N`."""
    import signal
    from dataclasses import replace
    from pathlib import Path

    from ..training.checkpoint import load_checkpoint, run_config
    from ..training.trainer import train as run

    if resume and overwrite:
        raise typer.BadParameter("--resume continues the run in --output and --overwrite replaces it: pass one")
    values = {**ctx.params, "train": list(train or []), "filters": parse_filters(filters),
              "heldout": split_list(heldout)}
    settings = {name: values[name] for name in TrainConfig.__dataclass_fields__ if values.get(name) is not None}
    if resume:
        stored = run_config(load_checkpoint(output), Path(output))
        changed = {name: settings[name] for name in given(ctx) if name in settings and name != "output"}
        check_resume(stored, changed, Path(output))
        config = replace(stored, **changed)
    else:
        if not train or not vocab:
            raise typer.BadParameter("training text and --vocab are required unless --resume")
        config = TrainConfig(**settings)
    record = run(config, resume=resume, overwrite=overwrite, given=given(ctx))
    if "interrupted" in record:
        typer.echo(f"interrupted ({record['interrupted']}) at step {record['step']}: checkpoint saved in {output}; "
                   f"continue with `pretrain -o {output} --resume`", err=True)
        raise typer.Exit(128 + signal.Signals[record["interrupted"]])
    typer.echo(record)


@app.command("evaluate")
def evaluate_command(
    run_dir: str = typer.Argument(..., help="Run directory or checkpoint file"),
    heldout: list[str] = typer.Argument(..., help="Held-out tokenised text: files, directories or globs"),
    batch_size: int = typer.Option(default("eval_batch_size"), callback=at_least(1)),
    fmt: str = typer.Option(None, "--format", callback=choice(*FORMATS), help="Text format (default: the run's)"),
    threads: int = typer.Option(default("threads"), callback=at_least(0)),
) -> None:
    """Held-out perplexity with the full softmax (exp of the mean forward/backward loss)."""
    import json
    from pathlib import Path

    import torch

    from ..training.models import model_from_checkpoint
    from ..training.trainer import evaluate

    if threads:
        torch.set_num_threads(threads)
    model, vocab, config = model_from_checkpoint(Path(run_dir))
    if fmt:
        config.fmt = fmt
    typer.echo(json.dumps(evaluate(model, vocab, heldout, config, batch_size)))


@app.command("export")
def export_command(
    run_dir: str = typer.Argument(..., help="Run directory or checkpoint file"),
    output: str = typer.Argument(..., help="LSTM: directory for options.json, weights.hdf5, vocab.txt. Transformer: "
                                            "AllenNLP model archive, a folder or a .tar.gz file"),
    with_softmax: bool = typer.Option(False, help="LSTM: also write softmax.pt, needed only to continue training "
                                                  "(a transformer archive always holds the softmax)"),
    overwrite: bool = typer.Option(False, help="Replace an existing output directory"),
) -> None:
    """Export a trained biLM: an LSTM in the official AllenNLP/bilm-tf layout (with a checksum that loading
    verifies), a transformer as an AllenNLP model archive (what `embed --archive` and the elmo component read)."""
    from pathlib import Path

    from ..training.export import export

    typer.echo(f"exported to {export(Path(run_dir), Path(output), with_softmax, overwrite)}")


@app.command("embed")
def embed_command(
    input_file: str = typer.Argument(..., help="UTF-8 text, one whitespace-tokenised sentence per line ('-': stdin); "
                                                 "a blank line is an empty sentence (0-token dataset)"),
    output_file: str = typer.Argument(..., help="HDF5 file to write: dataset 'i' holds line i (0-based)"),
    options_file: str = typer.Option(None, help="options.json of the biLM (default: the bundled model)"),
    weight_file: str = typer.Option(None, help="HDF5 weights of the biLM (default: the bundled model)"),
    model: str = typer.Option(None, "--model", help="A published model by name instead of the two files "
                                                     "(see `models`; LSTM or transformer); downloaded into the cache once"),
    archive: str = typer.Option(None, help="Instead of the two files: an AllenNLP model archive (transformer "
                                           "ELMo model.tar.gz or its folder) or a folder with options.json + weights.hdf5"),
    layers: str = typer.Option(default_of(embed_file, "layers"), callback=choice(*LAYER_CHOICES),
                               help="all: (L, n, D) per line (L = biLM layers + 1); top or average: (n, D)"),
    batch_size: int = typer.Option(BATCH_SIZE, callback=at_least(1), help="Sentences per forward pass"),
    stateful: bool = typer.Option(False, help="Carry LSTM state from batch to batch in file order, as "
                                              "`allennlp elmo` did (default: every line independent)"),
    precision: str = typer.Option(PRECISION, callback=choice(*PRECISIONS),
                                  help="fp32 (exact), fp16, bf16 or int8: per-token cosine to fp32 >= 0.999 on "
                                       "average on every layer; weights stay fp32 (fp32, fp16 and int8 multiply "
                                       "with copies packed once per load). Speed against fp32, original size, "
                                       "batch 32 / 64, idle (docs/speed.md): AVX2 CPU: int8 1.64x / 1.44x "
                                       "(1 thread), 1.55x / 1.32x (2 threads), fp16 1.06-1.23x, bf16 slower (no "
                                       "bf16 instructions); AVX-512 CPU with bf16 (Zen 5, 1 thread): int8 1.47x / "
                                       "1.26x, bf16 0.94x / 1.02x, fp16 0.99x / 0.93x; "
                                       "CPU only except bf16, which is also for GPUs"),
    part_lines: int = typer.Option(PART_LINES, callback=at_least(1),
                                   help="Under torchrun: lines per part file (resumable unit; rounded up to "
                                        "whole sorting chunks of 16 x --batch-size)"),
    overwrite: bool = typer.Option(False, help="Replace an existing output file (default: refuse, as `export` "
                                               "and `pretrain` do); an input is never replaced"),
) -> None:
    """Write ELMo vectors of every line to HDF5, in the layout of the removed `allennlp elmo` command.
    Under `torchrun --nproc_per_node N` (one or many machines) the processes share the lines; a rerun
    of an interrupted job skips the parts that were finished."""
    from ..embedder import Embedder
    from ..distributed import world
    from ..hub import resolve_bilm
    from ..errors import ElmoError
    from .embed_file import check_output
    from .embed_parts import embed_distributed

    rank, size = world()
    if archive is not None and (options_file is not None or weight_file is not None or model is not None):
        raise ElmoError("pass one of --archive, --model, or --options-file and --weight-file")
    if (options_file is None) != (weight_file is None):
        raise ElmoError("pass both --options-file and --weight-file, or neither for the bundled model")
    check_output(output_file, [input_file, options_file, weight_file, archive], overwrite)
    embedder = Embedder(resolve_bilm(model, options_file, weight_file, archive), batch_size=batch_size,
                        stateful=stateful, precision=precision)
    if size > 1:
        count, written = embed_distributed(embedder, input_file, output_file, layers, part_lines,
                                           overwrite=overwrite)
        typer.echo(f"rank {rank}/{size}: {plural(written, 'part')} written"
                   + (f"; {plural(count, 'sentence')} -> {output_file}" if rank == 0 else ""), err=True)
        return
    count = embed_file(embedder, input_file, output_file, layers, overwrite=overwrite)
    typer.echo(f"{plural(count, 'sentence')} -> {output_file}", err=True)


@app.command("download")
def download_command(
    name: str = typer.Argument(..., help="Model name (see `models`)"),
    cache_dir: str = typer.Option(None, "--dir", help="Cache directory (default: $SPACY_ELMO_CACHE, else the "
                                                      "platform's user cache directory)"),
    progress: bool = typer.Option(True, help="Show a progress bar"),
) -> None:
    """Fetch a published ELMo model into the cache (resumable, checked); instant once cached. Prints where
    it is: the folder with options.json + weights.hdf5, or the model archive (either one is an `--archive`)."""
    from ..hub import model_path

    path = model_path(name, cache_dir, progress)
    typer.echo(f"{name}: {path}")


@app.command("models")
def models_command(
    cache_dir: str = typer.Option(None, "--dir", help="Cache directory to look in"),
) -> None:
    """List the published ELMo models: name, vector width, size, and where it is cached (if it is)."""
    from ..hub import model_statuses

    rows = [("NAME", "WIDTH", "SIZE", "CACHED", "MODEL")]
    for row in model_statuses(cache_dir):
        size = "?" if row.size_bytes is None else f"{'~' if row.size_is_estimate else ''}{row.size_bytes / 1e6:.0f} MB"
        rows.append((row.name, str(row.output_dim or "?"), size, str(row.location or "no"), row.description))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        typer.echo("  ".join([c.ljust(w) for c, w in zip(r, widths)] + [r[4]]))
