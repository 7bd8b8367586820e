"""Published ELMo models by name: the catalogue, the cache and the downloader (no spaCy here)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, List, NamedTuple, Optional, Tuple

from ..bilm.kinds import PAIR
from ..errors import WeightsError
from .cache import CACHE_ENV, MIRROR_ENV, PathLike, bundled_files, cache_root, entry_files, is_cached, model_dir
from .catalogue import DEFAULT_NAME, MODELS, PublishedModel, RemoteFile, get_model, model_names
from .download import fetch_model

if TYPE_CHECKING:
    from ..bilm.interface import ContextualBiLM

__all__ = ["CACHE_ENV", "DEFAULT_NAME", "MIRROR_ENV", "MODELS", "ModelStatus", "PublishedModel", "RemoteFile",
           "cache_root", "fetch_model", "get_model", "model_names", "model_path", "model_statuses", "resolve_bilm",
           "resolve_model_files"]


def _check_one_source(name: Optional[str], options_file: Optional[PathLike], weight_file: Optional[PathLike],
                      archive: Optional[PathLike] = None) -> None:
    if archive is not None and (name is not None or options_file is not None or weight_file is not None):
        raise WeightsError(f"got archive={str(archive)!r} and also a model name or options/weight files; pass "
                           "one of them")
    if name is not None and (options_file is not None or weight_file is not None):
        raise WeightsError(f"got the model name {name!r} and also options/weight files; pass a name or both "
                           "files, not both")
    if (options_file is None) != (weight_file is None):
        given, missing = ("options_file", "weight_file") if options_file is not None else ("weight_file", "options_file")
        raise WeightsError(f"got {given}={str(options_file or weight_file)!r} but no {missing}; pass both files, "
                           "a model name, or neither for the bundled default model")


def resolve_bilm(name: Optional[str] = None, options_file: Optional[PathLike] = None,
                 weight_file: Optional[PathLike] = None, archive: Optional[PathLike] = None,
                 cache_dir: Optional[PathLike] = None, progress: bool = True) -> "ContextualBiLM":
    """The biLM (eval mode) that the caller named, whichever architecture it has: a catalogue name
    (downloaded into the cache first if needed), both files, an `archive` (AllenNLP model.tar.gz, its
    folder, or an `export` folder), or none of them for the bundled model."""
    from ..bilm.loading import load_any_bilm

    _check_one_source(name, options_file, weight_file, archive)
    if options_file is not None and weight_file is not None:
        return load_any_bilm(options_file=options_file, weight_file=weight_file)
    return load_any_bilm(archive if archive is not None else model_path(name, cache_dir, progress))


def model_path(name: Optional[str] = None, cache_dir: Optional[PathLike] = None, progress: bool = True) -> Path:
    """What load_any_bilm reads of a catalogue model (by default the bundled one): the folder or file it
    is bundled as, or its copy in the cache (downloaded first if needed)."""
    model = get_model(name)
    if model.folder is None:
        return fetch_model(model.name, cache_dir, progress)
    bundled_files(model)
    return model.kind.loadable(model.folder)


def resolve_model_files(name: Optional[str] = None, options_file: Optional[PathLike] = None,
                        weight_file: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None,
                        progress: bool = True) -> Tuple[Path, Path]:
    """The (options, weights) files of an LSTM biLM, for what needs the two files: a catalogue name gives
    its cached files (downloaded first if needed), both files are used as given, and neither gives the
    bundled model. A model archive has no such files: see resolve_bilm."""
    _check_one_source(name, options_file, weight_file)
    if options_file is not None and weight_file is not None:
        return Path(options_file), Path(weight_file)
    model = get_model(name)
    if model.kind.files != PAIR.files:
        raise WeightsError(f"{name!r} is a {model.kind.title}, not the "
                           f"{' + '.join(PAIR.files)} pair asked for here; use it by name in the elmo component, "
                           f"`pretrain --init-from`, `embed --model {name}`, Embedder.from_pretrained({name!r}) or "
                           f"resolve_bilm({name!r}), or fetch_model({name!r}) for the cached archive")
    return entry_files(model, model_path(name, cache_dir, progress))


class ModelStatus(NamedTuple):
    name: str
    output_dim: Optional[int]
    size_bytes: Optional[int]
    size_is_estimate: bool
    location: Optional[Path]
    description: str


def model_statuses(cache_dir: Optional[PathLike] = None) -> List[ModelStatus]:
    """One row per catalogue name, for `models`; sizes are exact where the model is there (bundled or
    cached), else estimated."""
    rows = []
    for model in MODELS.values():
        directory = model_dir(model, cache_dir)
        paths = entry_files(model, directory)
        there = all(p.is_file() for p in paths) if model.folder is not None else is_cached(paths)
        size = sum(p.stat().st_size for p in paths) if there else model.approx_weights_bytes
        rows.append(ModelStatus(model.name, model.output_dim, size, not there and size is not None,
                                directory if there else None, f"{model.title}; {model.training_data}"))
    return rows
