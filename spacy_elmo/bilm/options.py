"""The biLM hyper-parameters, read from and written to the official options.json layout."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Tuple, Union

from ..atomic import atomic_write_text
from ..errors import OptionsError

ACTIVATIONS = ("relu", "tanh")


@dataclass(frozen=True)
class ElmoOptions:
    """Architecture of a biLM; field names follow the keys of options.json."""

    kind: ClassVar[str] = "lstm"
    lstm_dim: int
    projection_dim: int
    filters: Tuple[Tuple[int, int], ...]
    char_embedding_dim: int
    n_layers: int = 2
    cell_clip: Optional[float] = 3.0
    proj_clip: Optional[float] = 3.0
    use_skip_connections: bool = True
    n_highway: int = 0
    activation: str = "relu"
    max_characters_per_token: int = 50
    extra: Dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        for name in ("lstm_dim", "projection_dim", "char_embedding_dim", "n_layers", "max_characters_per_token"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise OptionsError(f"option {name} must be a positive integer, found {value!r}")
        if self.projection_dim > self.lstm_dim:
            raise OptionsError(
                f"option lstm.projection_dim ({self.projection_dim}) must not exceed lstm.dim ({self.lstm_dim})"
            )
        if not isinstance(self.n_highway, int) or isinstance(self.n_highway, bool) or self.n_highway < 0:
            raise OptionsError(f"option char_cnn.n_highway must be an integer >= 0, found {self.n_highway!r}")
        if self.activation not in ACTIVATIONS:
            raise OptionsError(
                f"option char_cnn.activation must be one of {ACTIVATIONS}, found {self.activation!r}"
            )
        if self.max_characters_per_token < 3:
            raise OptionsError("option char_cnn.max_characters_per_token must be at least 3")
        if not self.filters:
            raise OptionsError("option char_cnn.filters must list at least one [width, n_filters] pair")
        for pair in self.filters:
            width, num = pair
            if not all(isinstance(x, int) and not isinstance(x, bool) for x in pair) or \
                    width < 1 or num < 1 or width > self.max_characters_per_token:
                raise OptionsError(
                    f"option char_cnn.filters has an invalid pair {list(pair)}: width must be in "
                    f"1..{self.max_characters_per_token} and the filter count positive"
                )
        for name in ("cell_clip", "proj_clip"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value < 0):
                raise OptionsError(f"option lstm.{name} must be a finite number >= 0 or null, found {value!r}")
        self._check_fits_in_memory()

    @property
    def n_parameters(self) -> int:
        """Parameters of the biLM these options describe (char CNN, highways, projection, LSTMs)."""
        d, f, p, l = self.char_embedding_dim, self.n_filters, self.projection_dim, self.lstm_dim
        cnn = 262 * d + sum(width * d * num + num for width, num in self.filters)
        highway = self.n_highway * 2 * (f * f + f)
        lstm = self.n_layers * 2 * ((p + p) * 4 * l + 4 * l + l * p)
        return cnn + highway + f * p + p + lstm

    def _check_fits_in_memory(self) -> None:
        """Refuse, before anything is allocated, a model whose float32 weights exceed this machine's memory."""
        needed = 4 * self.n_parameters
        try:
            available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return
        if needed > available:
            raise OptionsError(
                f"these options describe a biLM of {self.n_parameters:,} parameters ({needed / 2**30:.1f} GiB of "
                f"float32), more than this machine's {available / 2**30:.1f} GiB of memory; check lstm.dim "
                f"({self.lstm_dim}), projection_dim ({self.projection_dim}), char_cnn.filters ({self.n_filters} "
                f"filters) and n_layers ({self.n_layers})"
            )

    @property
    def n_filters(self) -> int:
        return sum(num for _, num in self.filters)

    @property
    def output_dim(self) -> int:
        """Width 2P of every output layer."""
        return 2 * self.projection_dim

    @property
    def n_output_layers(self) -> int:
        return self.n_layers + 1

    @classmethod
    def from_dict(cls, data: Dict[str, Any], source: str = "options") -> "ElmoOptions":
        """Validate an options.json dict; every problem names the key that causes it."""
        if not isinstance(data, dict):
            raise OptionsError(f"{source}: expected a JSON object, found {type(data).__name__}")
        if "char_cnn" not in data:
            raise OptionsError(
                f"{source}: missing key 'char_cnn' (token-input biLMs without a character CNN are not supported)"
            )
        lstm = _section(data, "lstm", source)
        cnn = _section(data, "char_cnn", source)
        embedding = _section(cnn, "embedding", source, prefix="char_cnn.")
        n_chars = cnn.get("n_characters", 262)
        if n_chars not in (261, 262):
            raise OptionsError(f"{source}: char_cnn.n_characters must be 261 or 262, found {n_chars!r}")
        try:
            filters = tuple((int(w), int(n)) for w, n in _require(cnn, "filters", source, "char_cnn."))
        except (TypeError, ValueError):
            raise OptionsError(f"{source}: char_cnn.filters must be a list of [width, count] pairs") from None
        extra = {k: v for k, v in data.items() if k not in ("lstm", "char_cnn")}
        try:
            return cls(
                lstm_dim=_require(lstm, "dim", source, "lstm."),
                projection_dim=lstm.get("projection_dim", lstm.get("dim")),
                n_layers=lstm.get("n_layers", 1),
                cell_clip=_clip(lstm, "cell_clip", source),
                proj_clip=_clip(lstm, "proj_clip", source),
                use_skip_connections=_bool(lstm, "use_skip_connections", source),
                char_embedding_dim=_require(embedding, "dim", source, "char_cnn.embedding."),
                filters=filters,
                n_highway=cnn.get("n_highway", 0),
                activation=cnn.get("activation", "relu"),
                max_characters_per_token=cnn.get("max_characters_per_token", 50),
                extra=extra,
            )
        except OptionsError as err:
            raise OptionsError(f"{source}: {err}") from None

    @classmethod
    def from_file(cls, path: Union[str, Path]) -> "ElmoOptions":
        path = Path(path)
        if not path.is_file():
            raise OptionsError(f"options file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise OptionsError(f"{path}: not a valid JSON options file ({err})") from None
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> Dict[str, Any]:
        """The inference layout (262 characters) that AllenNLP and bilm-tf load."""
        data = dict(self.extra)
        data["lstm"] = {
            "dim": self.lstm_dim,
            "projection_dim": self.projection_dim,
            "n_layers": self.n_layers,
            "cell_clip": self.cell_clip,
            "proj_clip": self.proj_clip,
            "use_skip_connections": self.use_skip_connections,
        }
        data["char_cnn"] = {
            "embedding": {"dim": self.char_embedding_dim},
            "filters": [list(f) for f in self.filters],
            "n_highway": self.n_highway,
            "n_characters": 262,
            "max_characters_per_token": self.max_characters_per_token,
            "activation": self.activation,
        }
        return data

    def to_file(self, path: Union[str, Path]) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")


def _section(data: Dict[str, Any], key: str, source: str, prefix: str = "") -> Dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise OptionsError(f"{source}: missing or invalid section '{prefix}{key}'")
    return value


def _require(section: Dict[str, Any], key: str, source: str, prefix: str) -> Any:
    if key not in section:
        raise OptionsError(f"{source}: missing key '{prefix}{key}'")
    return section[key]


def _clip(lstm: Dict[str, Any], key: str, source: str) -> Optional[float]:
    value = lstm.get(key)
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OptionsError(f"{source}: lstm.{key} must be a finite number or null, found {value!r}")
    return float(value)


def _bool(lstm: Dict[str, Any], key: str, source: str) -> bool:
    if key not in lstm:
        raise OptionsError(f"{source}: missing key 'lstm.{key}'")
    value = lstm[key]
    if not isinstance(value, bool):
        raise OptionsError(f"{source}: lstm.{key} must be true or false, found {value!r}")
    return value


PUBLISHED_FILTERS: List[Tuple[int, int]] = [(1, 32), (2, 32), (3, 64), (4, 128), (5, 256), (6, 512), (7, 1024)]
