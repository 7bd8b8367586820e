"""The biLM kinds, one row each: the only place in the package that knows which kinds there are. Loading,
the hub and training ask a row (by the name a config, checkpoint or catalogue entry records) for its
options class, the files a saved model of the kind consists of, and how to load them. No torch here, so
that the command line and the catalogue can read the table; a row imports its module only to build or
load one."""
from __future__ import annotations

import importlib
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Tuple, Type

from ..atomic import PathLike
from .archive_config import CONFIG_NAME
from .options import LstmOptions, TransformerOptions

if TYPE_CHECKING:
    from .interface import BiLMOptions, ContextualBiLM

OPTIONS_FILE = "options.json"
WEIGHTS_FILE = "weights.hdf5"
ARCHIVE_FILE = "model.tar.gz"


def resolve(spec: str) -> Any:
    """The object a `module:name` string names, imported on first use (torch stays out of `--help`)."""
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Kind:
    name: str
    title: str
    options: Type["BiLMOptions"]
    """Its options class: `from_dict(data, source)` reads what `to_dict` wrote."""
    files: Tuple[str, ...]
    """The files a published or cached model of this kind consists of, in the order they are fetched."""
    roles: Tuple[str, ...]
    """What each of `files` is, for messages."""
    saved_form: str
    """What `holds` recognises, for messages."""
    module: str
    """`module:class` of its torch module, built as class(options), untrained."""
    loader: str
    """`module:function` that loads a saved model in eval mode: from its one file (or that file unpacked),
    or from each of `files`."""

    def build(self, options: "BiLMOptions") -> "ContextualBiLM":
        return resolve(self.module)(options)

    def load(self, path: PathLike) -> "ContextualBiLM":
        """A model saved as `holds` recognises it, in eval mode."""
        path = Path(path)
        return self.load_files(*((path,) if len(self.files) == 1 else (path / f for f in self.files)))

    def load_files(self, *paths: PathLike) -> "ContextualBiLM":
        """A model in eval mode from each of its `files`, wherever they are."""
        return resolve(self.loader)(*paths)

    def loadable(self, folder: Path) -> Path:
        """What `load` reads of a folder holding `files`: the folder itself, or the one file it holds."""
        return folder / self.files[0] if len(self.files) == 1 else folder

    def holds(self, path: Path) -> bool:
        """Whether `path` is this kind's saved form: `files` in a folder, or a model of its own layout."""
        if len(self.files) == 1:
            return _is_archive(path)
        return path.is_dir() and all((path / name).is_file() for name in self.files)


def _is_archive(path: Path) -> bool:
    """A model archive, or the folder it unpacks to."""
    return (path / CONFIG_NAME).is_file() if path.is_dir() else path.is_file() and tarfile.is_tarfile(path)


LSTM = Kind(LstmOptions.kind, "LSTM biLM", LstmOptions, (OPTIONS_FILE, WEIGHTS_FILE), ("options", "weights"),
            f"folder with {OPTIONS_FILE} + {WEIGHTS_FILE}",
            "spacy_elmo.bilm.lstm_bilm:LstmBiLM", "spacy_elmo.bilm.weights:load_lstm_bilm")
TRANSFORMER = Kind(TransformerOptions.kind, "Transformer-ELMo model archive", TransformerOptions, (ARCHIVE_FILE,),
                   ("model archive",),
                   f"AllenNLP model archive: {ARCHIVE_FILE} or a folder with {CONFIG_NAME} and weights.th",
                   "spacy_elmo.bilm.transformer_bilm:TransformerBiLM", "spacy_elmo.bilm.archive:load_archive")
KINDS: Dict[str, Kind] = {kind.name: kind for kind in (LSTM, TRANSFORMER)}
PAIR = LSTM
"""The kind saved as an options file and a weight file, which `options_file`/`weight_file` arguments name."""
UNNAMED = LSTM
"""The kind of a config or training options without one: those saved before the transformer biLM existed."""
