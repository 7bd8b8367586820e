"""Published ELMo models by name: the catalogue, the cache and the downloader (no spaCy here)."""
from __future__ import annotations

from pathlib import Path
from typing import List, NamedTuple, Optional, Tuple

from ..errors import WeightsError
from .cache import CACHE_ENV, MIRROR_ENV, PathLike, cache_root, cached_files, model_dir
from .catalogue import DEFAULT_NAME, MODELS, PublishedModel, RemoteFile, get_model, model_names
from .default_model import default_model_files
from .download import fetch_model

__all__ = ["CACHE_ENV", "DEFAULT_NAME", "MIRROR_ENV", "MODELS", "ModelStatus", "PublishedModel", "RemoteFile",
           "cache_root", "default_model_files", "fetch_model", "get_model", "model_names", "model_statuses",
           "resolve_model_files"]


def resolve_model_files(name: Optional[str] = None, options_file: Optional[PathLike] = None,
                        weight_file: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None,
                        progress: bool = True) -> Tuple[Path, Path]:
    """The (options, weights) files to load: a catalogue name gives its cached files (downloaded first if
    needed), both files are used as given, and neither (or the name `default`) gives the bundled model."""
    if name is not None and (options_file is not None or weight_file is not None):
        raise WeightsError(f"got the model name {name!r} and also options/weight files; pass a name or both "
                           "files, not both")
    if (options_file is None) != (weight_file is None):
        given, missing = ("options_file", "weight_file") if options_file is not None else ("weight_file", "options_file")
        raise WeightsError(f"got {given}={str(options_file or weight_file)!r} but no {missing}; pass both files, "
                           "a model name, or neither for the bundled default model")
    if options_file is not None and weight_file is not None:
        return Path(options_file), Path(weight_file)
    if name is None or name == DEFAULT_NAME:
        return default_model_files()
    return fetch_model(name, cache_dir, progress)


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
        cached = cached_files(model_dir(model.name, cache_dir))
        size = sum(p.stat().st_size for p in cached) if cached else model.approx_weights_bytes
        rows.append(ModelStatus(model.name, model.output_dim, size, not cached and size is not None,
                                cached[0].parent if cached else None, f"{model.title}; {model.training_data}"))
    return rows


def _bundled_status() -> ModelStatus:
    from ..bilm.options import ElmoOptions

    try:
        options, weights = default_model_files()
    except WeightsError:
        return ModelStatus(DEFAULT_NAME, None, None, False, None, "bundled English model: missing in this installation")
    return ModelStatus(DEFAULT_NAME, ElmoOptions.from_file(options).output_dim,
                       options.stat().st_size + weights.stat().st_size, False, options.parent,
                       "bundled English model (see its MODEL_CARD.md)")
