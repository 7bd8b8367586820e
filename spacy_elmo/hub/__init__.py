"""Published ELMo models by name: the catalogue, the cache and the downloader (no spaCy here)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, List, NamedTuple, Optional, Tuple

from ..bilm.options import LstmOptions
from ..errors import WeightsError
from .cache import CACHE_ENV, MIRROR_ENV, PathLike, cache_root, entry_files, is_cached, model_dir, model_files
from .catalogue import DEFAULT_NAME, MODELS, PublishedModel, RemoteFile, get_model, model_names
from .default_model import default_model_files
from .download import fetch_model

if TYPE_CHECKING:
    from ..bilm.interface import ContextualBiLM

__all__ = ["CACHE_ENV", "DEFAULT_NAME", "MIRROR_ENV", "MODELS", "ModelStatus", "PublishedModel", "RemoteFile",
           "cache_root", "default_model_files", "fetch_model", "get_model", "model_names", "model_statuses",
           "resolve_bilm", "resolve_model_files"]


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
    folder, or an `export` folder), or none of them (or the name `default`) for the bundled model."""
    from ..bilm.loading import load_any_bilm

    _check_one_source(name, options_file, weight_file, archive)
    if archive is not None:
        return load_any_bilm(archive)
    if name in (None, DEFAULT_NAME):
        options_file, weight_file = resolve_model_files(name, options_file, weight_file)
        return load_any_bilm(options_file=options_file, weight_file=weight_file)
    return load_any_bilm(fetch_model(name, cache_dir, progress))


def resolve_model_files(name: Optional[str] = None, options_file: Optional[PathLike] = None,
                        weight_file: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None,
                        progress: bool = True) -> Tuple[Path, Path]:
    """The (options, weights) files of an LSTM biLM, for what needs the two files: a catalogue name gives
    its cached files (downloaded first if needed), both files are used as given, and neither (or the
    name `default`) gives the bundled model. A model archive has no such files: see resolve_bilm."""
    _check_one_source(name, options_file, weight_file)
    if options_file is not None and weight_file is not None:
        return Path(options_file), Path(weight_file)
    if name is None or name == DEFAULT_NAME:
        return default_model_files()
    if get_model(name).archive is not None:
        raise WeightsError(f"{name!r} is a Transformer-ELMo model archive, not the options.json + weights.hdf5 "
                           "pair asked for here; use it by name in the elmo component, `pretrain --init-from`, "
                           f"`embed --model {name}`, Embedder.from_pretrained({name!r}) or resolve_bilm({name!r}), "
                           f"or fetch_model({name!r}) for the cached archive")
    return model_files(fetch_model(name, cache_dir, progress))


class ModelStatus(NamedTuple):
    name: str
    output_dim: Optional[int]
    size_bytes: Optional[int]
    size_is_estimate: bool
    location: Optional[Path]
    description: str


def model_statuses(cache_dir: Optional[PathLike] = None) -> List[ModelStatus]:
    """One row per name for `models`: the bundled model, then the catalogue; sizes are exact once cached."""
    rows = [_bundled_status()]
    for model in MODELS.values():
        directory = model_dir(model.name, cache_dir)
        paths = entry_files(model, directory)
        cached = is_cached(paths)
        size = sum(p.stat().st_size for p in paths) if cached else model.approx_weights_bytes
        rows.append(ModelStatus(model.name, model.output_dim, size, not cached and size is not None,
                                directory if cached else None, f"{model.title}; {model.training_data}"))
    return rows


def _bundled_status() -> ModelStatus:
    try:
        options, weights = default_model_files()
    except WeightsError:
        return ModelStatus(DEFAULT_NAME, None, None, False, None, "bundled English model: missing in this installation")
    return ModelStatus(DEFAULT_NAME, LstmOptions.from_file(options).output_dim,
                       options.stat().st_size + weights.stat().st_size, False, options.parent,
                       "bundled English model (see its MODEL_CARD.md)")
