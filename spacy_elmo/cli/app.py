"""Command line: `python -m spacy_elmo COMMAND` (also `spacy elmo COMMAND`)."""
from __future__ import annotations

import typer

app = typer.Typer(name="elmo", help="ELMo biLMs: embed text, build vocabularies, pretrain, evaluate, export.",
                  no_args_is_help=True, add_completion=False)


def _split(values: str) -> list:
    return [v for v in values.split(",") if v]


@app.command("prepare")
def prepare_command(
    inputs: list[str] = typer.Argument(..., help="Text files, directories or globs"),
    output: str = typer.Option(..., "--output", "-o", help="Directory for the shards"),
    fmt: str = typer.Option("raw", "--format", help="raw (running text), lines (one raw sentence per line) or tokens"),
    lang: str = typer.Option("en", help="spaCy language whose tokenizer and sentencizer split raw text"),
    gutenberg: bool = typer.Option(False, help="Keep only the text between Project Gutenberg START/END markers"),
    n_shards: int = typer.Option(20, help="Number of shard files (at least the number of training processes)"),
    n_process: int = typer.Option(1, help="Tokenising processes"),
    seed: int = typer.Option(0),
) -> None:
    """Tokenise text once into shuffled shards of one sentence per line, the input of `vocab` and `pretrain`."""
    from ..training.corpus import tokenize_files, write_shards

    per_file = tokenize_files(inputs, fmt, lang, gutenberg, n_process)
    lines = [line for file_lines in per_file.values() for line in file_lines]
    paths = write_shards(lines, output, n_shards, seed)
    typer.echo(f"{len(lines)} sentences, {sum(len(x.split()) for x in lines)} tokens from {len(per_file)} files "
               f"-> {len(paths)} shards in {output}")


@app.command("vocab")
def vocab_command(
    inputs: list[str] = typer.Argument(..., help="Tokenised text: files, directories or globs"),
    output: str = typer.Option(..., "--output", "-o", help="Vocabulary file to write"),
    max_size: int = typer.Option(50_000, help="Vocabulary size including <S>, </S>, <UNK>"),
    min_count: int = typer.Option(1, help="Drop tokens seen fewer times"),
    fmt: str = typer.Option("tokens", "--format", help="tokens, lines or raw (see `prepare`)"),
    lang: str = typer.Option("en"),
) -> None:
    """Build a frequency-sorted softmax vocabulary (<S>, </S>, <UNK> first) from text."""
    from ..training.corpus import expand_paths, read_sentences
    from ..training.vocab import Vocab

    sentences = (s for path in expand_paths(inputs) for s in read_sentences(path, fmt, lang))
    vocab = Vocab.build(sentences, max_size, min_count)
    vocab.to_file(output)
    typer.echo(f"{len(vocab)} tokens -> {output}")


@app.command("pretrain")
def pretrain_command(
    train: list[str] = typer.Argument(None, help="Training text (shards): files, directories or globs"),
    output: str = typer.Option(..., "--output", "-o", help="Run directory (checkpoint, log, plot)"),
    vocab: str = typer.Option(None, help="Vocabulary file (from `vocab`)"),
    resume: bool = typer.Option(False, help="Continue the run in --output exactly where its checkpoint stopped"),
    init_from: str = typer.Option(None, help="Start from a run directory, checkpoint or export (same vocabulary)"),
    heldout: str = typer.Option("", help="Comma-separated held-out files/dirs to evaluate at the end"),
    fmt: str = typer.Option("tokens", "--format", help="tokens, lines or raw (see `prepare`)"),
    lang: str = typer.Option("en"),
    lstm_dim: int = typer.Option(512),
    projection_dim: int = typer.Option(128),
    n_layers: int = typer.Option(2),
    filters: str = typer.Option("1:32,2:32,3:64,4:128,5:256", help="width:count pairs of the char CNN"),
    char_dim: int = typer.Option(16),
    n_highway: int = typer.Option(1),
    dropout: float = typer.Option(0.1),
    batch_size: int = typer.Option(64),
    unroll_steps: int = typer.Option(20),
    n_negative_samples: int = typer.Option(8192),
    optimizer: str = typer.Option("adagrad", help="adagrad (bilm-tf) or adam"),
    learning_rate: float = typer.Option(0.2),
    clip_norm: float = typer.Option(10.0),
    max_steps: int = typer.Option(0, help="Stop after this many steps (0: no limit)"),
    max_minutes: float = typer.Option(0.0, help="Stop cleanly after this much training time (0: no limit)"),
    checkpoint_every: int = typer.Option(1000),
    checkpoint_minutes: float = typer.Option(5.0),
    log_every: int = typer.Option(10),
    eval_batch_size: int = typer.Option(64),
    seed: int = typer.Option(0),
    threads: int = typer.Option(0, help="torch threads (0: torch's default)"),
) -> None:
    """Train a biLM the bilm-tf way; Ctrl-C saves a checkpoint. Works under `torchrun --nproc_per_node N`."""
    from ..training.trainer import TrainConfig, load_checkpoint, train as run

    if resume:
        config = TrainConfig.from_dict(load_checkpoint(output)["config"])
        config.max_steps, config.max_minutes = max_steps or config.max_steps, max_minutes or config.max_minutes
    else:
        if not train or not vocab:
            raise typer.BadParameter("training text and --vocab are required unless --resume")
        config = TrainConfig(
            train=list(train), vocab=vocab, output=output, fmt=fmt, lang=lang, lstm_dim=lstm_dim,
            projection_dim=projection_dim, n_layers=n_layers,
            filters=[[int(x) for x in pair.split(":")] for pair in _split(filters)], char_embedding_dim=char_dim,
            n_highway=n_highway, dropout=dropout, batch_size=batch_size, unroll_steps=unroll_steps,
            n_negative_samples=n_negative_samples, optimizer=optimizer, learning_rate=learning_rate,
            clip_norm=clip_norm, max_steps=max_steps, max_minutes=max_minutes, checkpoint_every=checkpoint_every,
            checkpoint_minutes=checkpoint_minutes, log_every=log_every, heldout=_split(heldout),
            eval_batch_size=eval_batch_size, seed=seed, threads=threads, init_from=init_from)
    record = run(config, resume=resume)
    typer.echo(record)


@app.command("evaluate")
def evaluate_command(
    run_dir: str = typer.Argument(..., help="Run directory or checkpoint file"),
    heldout: list[str] = typer.Argument(..., help="Held-out tokenised text: files, directories or globs"),
    batch_size: int = typer.Option(64),
    fmt: str = typer.Option(None, "--format", help="Text format (default: the run's)"),
    threads: int = typer.Option(0),
) -> None:
    """Held-out perplexity with the full softmax (exp of the mean forward/backward loss)."""
    import json
    from pathlib import Path

    import torch

    from ..training.trainer import evaluate, model_from_checkpoint

    if threads:
        torch.set_num_threads(threads)
    model, vocab, config = model_from_checkpoint(Path(run_dir))
    if fmt:
        config.fmt = fmt
    typer.echo(json.dumps(evaluate(model, vocab, heldout, config, batch_size)))


@app.command("export")
def export_command(
    run_dir: str = typer.Argument(..., help="Run directory or checkpoint file"),
    output: str = typer.Argument(..., help="Directory for options.json, weights.hdf5, vocab.txt"),
    with_softmax: bool = typer.Option(False, help="Also write softmax.pt, needed only to continue training"),
) -> None:
    """Export a trained biLM in the official AllenNLP/bilm-tf layout."""
    from pathlib import Path

    from ..training.trainer import export

    typer.echo(f"exported to {export(Path(run_dir), Path(output), with_softmax)}")


@app.command("embed")
def embed_command(
    input_file: str = typer.Argument(..., help="UTF-8 text, one whitespace-tokenised sentence per line ('-': stdin); "
                                                 "a blank line is an empty sentence (0-token dataset)"),
    output_file: str = typer.Argument(..., help="HDF5 file to write: dataset 'i' holds line i (0-based)"),
    options_file: str = typer.Option(None, help="options.json of the biLM (default: the bundled model)"),
    weight_file: str = typer.Option(None, help="HDF5 weights of the biLM (default: the bundled model)"),
    layers: str = typer.Option("all", help="all: (3, n, 2P) per line; top or average: (n, 2P)"),
    batch_size: int = typer.Option(64, min=1, help="Sentences per forward pass"),
    stateful: bool = typer.Option(False, help="Carry LSTM state from batch to batch in file order, as "
                                              "`allennlp elmo` did (default: every line independent)"),
) -> None:
    """Write ELMo vectors of every line to HDF5, in the layout of the removed `allennlp elmo` command."""
    from ..bilm.embedder import Embedder
    from ..default_model import default_model_files
    from ..errors import ElmoError
    from .embed_file import embed_file

    try:
        if (options_file is None) != (weight_file is None):
            raise ElmoError("pass both --options-file and --weight-file, or neither for the bundled model")
        if options_file is None:
            options_file, weight_file = (str(p) for p in default_model_files())
        embedder = Embedder.from_files(options_file, weight_file, batch_size=batch_size, stateful=stateful)
        count = embed_file(embedder, input_file, output_file, layers)
    except ElmoError as err:
        typer.echo(f"Error: {err}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{count} sentences -> {output_file}", err=True)
