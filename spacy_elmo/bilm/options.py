"""The hyper-parameters of both biLM kinds, validated; no torch here, so that configs, checkpoints and the
command line can read them cheaply. An LSTM's are read from and written to the official options.json layout."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Tuple, Union

from ..atomic import atomic_write_text
from ..errors import OptionsError
from .char_ids import MAX_CHARS, N_CHARACTERS

ACTIVATIONS = ("relu", "tanh")
MAX_LAYERS = 64
MAX_HIGHWAY = 16
MAX_FILTER_WIDTHS = 64
MAX_CHARACTERS = 1024
MEMINFO = Path("/proc/meminfo")
CGROUP_MEMORY = Path("/sys/fs/cgroup")


def available_memory() -> Optional[int]:
    """Bytes this process could still allocate: the kernel's MemAvailable, within a cgroup (container) limit;
    the machine's memory where neither is known."""
    found = []
    try:
        found += [int(line.split()[1]) * 1024 for line in MEMINFO.read_text().splitlines()
                  if line.startswith("MemAvailable:")]
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit, used = ((CGROUP_MEMORY / name).read_text().strip() for name in ("memory.max", "memory.current"))
        if limit.isdigit() and used.isdigit():
            found.append(int(limit) - int(used))
    except OSError:
        pass
    if found:
        return max(min(found), 0)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits_in_memory(n_parameters: int, sizes: str) -> None:
    """Refuse, before anything is allocated, a model whose float32 weights exceed the memory available."""
    needed, available = 4 * n_parameters, available_memory()
    if available is not None and needed > available:
        raise OptionsError(f"these options describe a biLM of {n_parameters:,} parameters ({needed / 2**30:.1f} GiB "
                           f"of float32), more than this machine's {available / 2**30:.1f} GiB of memory available now; "
                           f"check {sizes}")


def _check_positive(options: Any, names: Tuple[str, ...]) -> None:
    for name in names:
        value = getattr(options, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise OptionsError(f"option {name} must be a positive integer, found {value!r}")


@dataclass(frozen=True, kw_only=True)
class CharCnnOptions:
    """The char CNN both biLM kinds start with. Each kind names these fields in its error messages
    as its saved layout does (`prefix`: "char_cnn." in an LSTM's options.json)."""

    prefix: ClassVar[str] = ""
    filters: Tuple[Tuple[int, int], ...]
    char_embedding_dim: int
    n_highway: int = 0
    activation: str = "relu"
    max_characters_per_token: int = MAX_CHARS
    extra: Dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", tuple(tuple(pair) for pair in self.filters))
        _check_positive(self, ("char_embedding_dim", "max_characters_per_token"))
        where = f"option {self.prefix}"
        if not isinstance(self.n_highway, int) or isinstance(self.n_highway, bool) or self.n_highway < 0:
            raise OptionsError(f"{where}n_highway must be an integer >= 0, found {self.n_highway!r}")
        if self.activation not in ACTIVATIONS:
            raise OptionsError(f"{where}activation must be one of {ACTIVATIONS}, found {self.activation!r}")
        if self.max_characters_per_token < 3:
            raise OptionsError(f"{where}max_characters_per_token must be at least 3")
        if not self.filters:
            raise OptionsError(f"{where}filters must list at least one [width, n_filters] pair")
        for pair in self.filters:
            if len(pair) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in pair) or \
                    not 1 <= pair[0] <= self.max_characters_per_token or pair[1] < 1:
                raise OptionsError(f"{where}filters has an invalid pair {list(pair)}: width must be in "
                                   f"1..{self.max_characters_per_token} and the filter count positive")

    @property
    def n_filters(self) -> int:
        return sum(num for _, num in self.filters)

    @property
    def char_cnn_parameters(self) -> int:
        """Parameters of the char embedding, convolutions and highway layers (not the projection after them)."""
        n_filters, dim = self.n_filters, self.char_embedding_dim
        return N_CHARACTERS * dim + sum(width * dim * num + num for width, num in self.filters) + \
            self.n_highway * 2 * (n_filters * n_filters + n_filters)

    def check_size(self, n_layers: int, sizes: str) -> None:
        """Refuse, before any module is built, counts far above every published biLM's (2 LSTM or 6 transformer
        layers, 1-2 highway layers, 7 filter widths, 50 characters per token), which are typos, and a model
        (`n_parameters`, which each kind defines) larger than this machine's memory."""
        for name, value, bound in (("n_layers", n_layers, MAX_LAYERS), ("n_highway", self.n_highway, MAX_HIGHWAY),
                                   ("filters", len(self.filters), MAX_FILTER_WIDTHS),
                                   ("max_characters_per_token", self.max_characters_per_token, MAX_CHARACTERS)):
            if value > bound:
                raise OptionsError(f"option {name} is {value:,}, more than {bound}, the most spacy-elmo builds "
                                   "(published biLMs stay far below); check the options")
        check_fits_in_memory(self.n_parameters, sizes)


@dataclass(frozen=True, kw_only=True)
class LstmOptions(CharCnnOptions):
    """Architecture of an LSTM biLM; field names follow the keys of options.json."""

    kind: ClassVar[str] = "lstm"
    prefix: ClassVar[str] = "char_cnn."
    lstm_dim: int
    projection_dim: int
    n_layers: int = 2
    cell_clip: Optional[float] = 3.0
    proj_clip: Optional[float] = 3.0
    use_skip_connections: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive(self, ("lstm_dim", "projection_dim", "n_layers"))
        if self.projection_dim > self.lstm_dim:
            raise OptionsError(
                f"option lstm.projection_dim ({self.projection_dim}) must not exceed lstm.dim ({self.lstm_dim})"
            )
        for name in ("cell_clip", "proj_clip"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value < 0):
                raise OptionsError(f"option lstm.{name} must be a finite number >= 0 or null, found {value!r}")
        self.check_size(self.n_layers, f"lstm.dim ({self.lstm_dim}), projection_dim ({self.projection_dim}), "
                                       f"char_cnn.filters ({self.n_filters} filters) and n_layers ({self.n_layers})")

    @property
    def n_parameters(self) -> int:
        """Parameters of the biLM these options describe (char CNN, highways, projection, LSTMs)."""
        f, p, l = self.n_filters, self.projection_dim, self.lstm_dim
        lstm = self.n_layers * 2 * ((p + p) * 4 * l + 4 * l + l * p)
        return self.char_cnn_parameters + f * p + p + lstm

    @property
    def output_dim(self) -> int:
        """Width 2P of every output layer."""
        return 2 * self.projection_dim

    @property
    def n_output_layers(self) -> int:
        return self.n_layers + 1

    @classmethod
    def from_dict(cls, data: Dict[str, Any], source: str = "options") -> "LstmOptions":
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
        n_chars = cnn.get("n_characters", N_CHARACTERS)
        if n_chars not in (N_CHARACTERS - 1, N_CHARACTERS):
            raise OptionsError(f"{source}: char_cnn.n_characters must be {N_CHARACTERS - 1} or {N_CHARACTERS}, "
                               f"found {n_chars!r}")
        filters = whole_filters(_require(cnn, "filters", source, "char_cnn."), f"{source}: char_cnn.filters")
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
                max_characters_per_token=cnn.get("max_characters_per_token", MAX_CHARS),
                extra=extra,
            )
        except OptionsError as err:
            raise OptionsError(f"{source}: {err}") from None

    @classmethod
    def from_file(cls, path: Union[str, Path]) -> "LstmOptions":
        path = Path(path)
        if not path.is_file():
            raise OptionsError(f"options file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise OptionsError(f"{path}: not a valid JSON options file ({err})") from None
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> Dict[str, Any]:
        """The inference layout (N_CHARACTERS) that AllenNLP and bilm-tf load."""
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
            "n_characters": N_CHARACTERS,
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


def whole_filters(pairs: Any, where: str) -> Tuple[Tuple[int, int], ...]:
    """Char-CNN [width, count] pairs as integers (`where` names them in errors): a float without a fraction
    (a JSON writer's 2.0) is taken, any other non-integer refused rather than truncated."""
    try:
        pairs = [(width, count) for width, count in pairs]
    except (TypeError, ValueError):
        raise OptionsError(f"{where} must be a list of [width, count] pairs") from None
    for pair in pairs:
        if not all(not isinstance(x, bool) and (isinstance(x, int) or isinstance(x, float) and x.is_integer())
                   for x in pair):
            raise OptionsError(f"{where} has {list(pair)}: a width and a count must be whole numbers")
    return tuple((int(width), int(count)) for width, count in pairs)


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


@dataclass(frozen=True, kw_only=True)
class TransformerOptions(CharCnnOptions):
    """Architecture of a transformer biLM; `input_dim` is both the char projection and the model width."""

    kind: ClassVar[str] = "transformer"
    input_dim: int
    hidden_dim: int
    n_layers: int
    n_highway: int = 2
    n_heads: int = 8
    layer_norm: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive(self, ("input_dim", "hidden_dim", "n_layers", "n_heads"))
        if self.input_dim % self.n_heads or self.input_dim % 2:
            raise OptionsError(f"option input_dim ({self.input_dim}) must be even and a multiple of "
                               f"n_heads ({self.n_heads})")
        self.check_size(self.n_layers, f"input_dim ({self.input_dim}), hidden_dim ({self.hidden_dim}), "
                                       f"filters ({self.n_filters} filters) and n_layers ({self.n_layers})")

    @property
    def n_parameters(self) -> int:
        """Parameters of the biLM these options describe (char encoder, then both directions' layers)."""
        d, h = self.input_dim, self.hidden_dim
        layer = 4 * (d * d + d) + (d * h + h) + (h * d + d) + 2 * 2 * d
        encoder = self.char_cnn_parameters + self.n_filters * d + d
        return encoder + (2 * d if self.layer_norm else 0) + 2 * (self.n_layers * layer + 2 * d)

    @property
    def output_dim(self) -> int:
        return 2 * self.input_dim

    @property
    def n_output_layers(self) -> int:
        return self.n_layers + 1

    def to_dict(self) -> Dict[str, Any]:
        return {"input_dim": self.input_dim, "hidden_dim": self.hidden_dim, "n_layers": self.n_layers,
                "filters": [list(f) for f in self.filters], "char_embedding_dim": self.char_embedding_dim,
                "n_highway": self.n_highway, "n_heads": self.n_heads, "activation": self.activation,
                "layer_norm": self.layer_norm, "max_characters_per_token": self.max_characters_per_token}

    @classmethod
    def from_dict(cls, data: Dict[str, Any], source: str = "options") -> "TransformerOptions":
        names = set(cls.__dataclass_fields__) - {"extra"}
        unknown = sorted(set(data) - names)
        if unknown:
            raise OptionsError(f"{source}: unknown transformer options {unknown}")
        try:
            return cls(**data)
        except TypeError as err:
            raise OptionsError(f"{source}: {err}") from None
        except (OptionsError, ValueError) as err:
            raise OptionsError(f"{source}: {err}") from None


PUBLISHED_FILTERS: List[Tuple[int, int]] = [(1, 32), (2, 32), (3, 64), (4, 128), (5, 256), (6, 512), (7, 1024)]
