"""The settings of a training run: `TrainConfig`, each field with its default and its allowed values.

`pretrain`'s options are made from these fields (see cli/app.py), so a default, a bound or a choice
list is written here only. A setting that only one biLM kind has (lstm_dim, input_dim, ...), and
unroll_steps, default to `KIND_DEFAULT`: the run's kind (kinds.py) fills in its own default, and a
setting of another kind is refused rather than silently ignored.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Set

from ..bilm.char_ids import MAX_CHARS
from ..errors import InputError, OptionsError
from .corpus import FORMATS, LANG, expand_paths
from .kinds import DEFAULT, KINDS, TrainingKind
from .vocab import Vocab

if TYPE_CHECKING:
    from ..bilm.interface import BiLMOptions

SMALL_FILTERS = [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256]]
OPTIMIZERS = ("adagrad", "adam")
PRECISIONS = ("fp32", "bf16")
RESUMABLE = ("output", "max_steps", "max_minutes", "checkpoint_every", "checkpoint_minutes", "log_every", "heldout",
             "eval_batch_size", "threads", "progress", "init_from", "precision")
"""Settings a resumed run may change; any other difference from the run's stored settings is refused.
`precision` is one of them: a checkpoint holds the same fp32 weights and optimizer state in either
precision (and no loss-scaler state), so a switch changes only the arithmetic of the steps after it,
which the log records per line."""
PATH_SETTINGS = ("train", "vocab", "heldout", "init_from")
ARCHITECTURE = ("lstm_dim", "projection_dim", "cell_clip", "proj_clip", "use_skip_connections", "input_dim",
                "hidden_dim", "n_heads", "n_layers", "filters", "char_embedding_dim", "n_highway",
                "max_characters_per_token")
"""The settings that describe the biLM (those of its options): `--init-from` brings its own."""
FLAGS = {"char_embedding_dim": "--char-dim"}
"""`pretrain` flags not named after their setting."""


class _KindDefault:
    def __repr__(self) -> str:
        return "KIND_DEFAULT"


KIND_DEFAULT: Any = _KindDefault()
"""The default of the run's biLM kind (for a setting of another kind: not set)."""


@dataclass(frozen=True)
class Interval:
    """The finite numbers a float setting allows: (low, high] by default; `zero_ok` also allows 0 ("no limit")."""

    low: float = 0.0
    high: float = math.inf
    low_open: bool = True
    high_open: bool = False
    zero_ok: bool = False

    def __contains__(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.zero_ok and value == 0:
            return True
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return math.isfinite(value) and above and below

    def __str__(self) -> str:
        bounds = f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        return bounds + (" (or 0 for no limit)" if self.zero_ok else "")


POSITIVE = Interval()


def _setting(default: Any = KIND_DEFAULT, *, low: Optional[int] = None, interval: Optional[Interval] = None,
             choices: Sequence[str] = (), noun: str = "", factory: Optional[Callable[[], Any]] = None) -> Any:
    """A field with what `pretrain` and validation need: an integer's `low` bound, a float's `interval`,
    or the `choices` of a string (`noun` names it in errors)."""
    metadata = {"low": low, "interval": interval, "choices": tuple(choices), "noun": noun}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Everything a run needs; saved in its checkpoint so `--resume` needs only the run directory."""

    train: List[str]
    vocab: str
    output: str
    fmt: str = _setting("tokens", choices=FORMATS, noun="text format")
    lang: str = LANG
    bilm: str = _setting(DEFAULT.name, choices=tuple(KINDS), noun="biLM architecture")
    # the architecture (with init_from: the source's, see ARCHITECTURE); n_layers, the char CNN and
    # max_characters_per_token are shared, the others belong to one kind (its `defaults`, see kinds.py)
    lstm_dim: Optional[int] = _setting(low=1)
    projection_dim: Optional[int] = _setting(low=1)
    cell_clip: Optional[float] = _setting()
    proj_clip: Optional[float] = _setting()
    use_skip_connections: Optional[bool] = _setting()
    input_dim: Optional[int] = _setting(low=1)
    hidden_dim: Optional[int] = _setting(low=1)
    n_heads: Optional[int] = _setting(low=1)
    n_layers: int = _setting(2, low=1)
    filters: List[List[int]] = _setting(factory=lambda: [list(f) for f in SMALL_FILTERS])
    char_embedding_dim: int = _setting(16, low=1)
    n_highway: int = _setting(1, low=0)
    max_characters_per_token: int = MAX_CHARS
    # training (bilm-tf defaults except the batch size and the optimizer: Adam 0.002, measured better on a small
    # budget in the bundled model's card; bilm-tf's is adagrad 0.2)
    dropout: float = _setting(0.1, interval=Interval(0, 1, low_open=False, high_open=True))
    batch_size: int = _setting(64, low=1)
    unroll_steps: int = _setting(low=1)
    n_negative_samples: int = _setting(8192, low=1)
    optimizer: str = _setting("adam", choices=OPTIMIZERS, noun="optimizer")
    learning_rate: float = _setting(0.002, interval=POSITIVE)
    clip_norm: float = _setting(10.0, interval=POSITIVE)
    max_steps: int = _setting(0, low=0)
    max_minutes: float = _setting(0.0, interval=Interval(zero_ok=True))
    checkpoint_every: int = _setting(1000, low=1)
    checkpoint_minutes: float = _setting(5.0, interval=POSITIVE)
    log_every: int = _setting(10, low=1)
    heldout: List[str] = field(default_factory=list)
    eval_batch_size: int = _setting(64, low=1)
    seed: int = _setting(0, low=0)
    threads: int = _setting(0, low=0)
    init_from: Optional[str] = None
    softmax_warmup_steps: int = _setting(0, low=0)
    progress: bool = True
    precision: str = _setting("fp32", choices=PRECISIONS, noun="training precision")

    def __post_init__(self) -> None:
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise InputError(f"unknown {f.metadata['noun']} {getattr(self, f.name)!r}; expected one of {choices}")
        self._take_kind_defaults()
        others = other_kinds_settings(self.kind)
        for f in fields(self):
            value, low, interval = getattr(self, f.name), f.metadata.get("low"), f.metadata.get("interval")
            if f.name in others:
                continue
            if low is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise InputError(f"training setting {f.name} must be an integer >= {low}, found {value!r}")
            if interval is not None and value not in interval:
                raise InputError(f"training setting {f.name} must be a finite number in {interval}, found {value!r}")
        try:  # the architecture, sizes that fit in memory included, before anything is read or allocated
            self.bilm_options()
        except OptionsError as err:
            raise InputError(f"training setting: {err}") from None

    def _take_kind_defaults(self) -> None:
        foreign = [name for name in other_kinds_settings(self.kind) if getattr(self, name) not in (KIND_DEFAULT, None)]
        if foreign:
            owners = sorted({kind.name for kind in KINDS.values() for name in foreign if name in kind.defaults})
            raise InputError(f"training settings only for {' and '.join(owners)} biLMs were given to a {self.bilm!r} run, "
                             f"which would ignore them: {', '.join(foreign)}; drop them")
        for name in kind_settings():
            if getattr(self, name) is KIND_DEFAULT:
                setattr(self, name, self.kind.defaults.get(name))

    @property
    def kind(self) -> TrainingKind:
        return KINDS[self.bilm]

    def bilm_options(self) -> BiLMOptions:
        """The architecture this config describes."""
        return self.kind.impl.architecture(vars(self))

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "TrainConfig":
        data = {k: v for k, v in data.items() if k != "run_paths"}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown training settings: {unknown}")
        return cls(**data)


def kind_settings() -> Set[str]:
    """The settings whose default depends on the biLM kind."""
    return {name for kind in KINDS.values() for name in kind.defaults}


def other_kinds_settings(kind: TrainingKind) -> List[str]:
    """The settings that belong to other kinds than `kind`, in field order."""
    return [f.name for f in fields(TrainConfig) if f.name in kind_settings() - set(kind.defaults)]


def architecture_settings(options: BiLMOptions) -> Dict[str, Any]:
    """The ARCHITECTURE settings that describe `options`, as a TrainConfig holds them."""
    found = {name: getattr(options, name) for name in ARCHITECTURE if hasattr(options, name)}
    return {**found, "filters": [list(pair) for pair in options.filters]}


def flag(name: str) -> str:
    """The `pretrain` flag of a setting."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def default(name: str) -> Any:
    """The default of a setting that is the same for every kind (also what a run stored before the
    setting existed had)."""
    f = TrainConfig.__dataclass_fields__[name]
    return f.default_factory() if callable(f.default_factory) else f.default


def check_resume(stored: TrainConfig, given: Mapping[str, Any], run_dir: Path) -> None:
    """Refuse `given` settings that differ from the run's own, except those a resumed run may change."""
    differences = []
    for name, new in given.items():
        old = getattr(stored, name)
        if name in RESUMABLE or old == new:
            continue
        if name == "train" and _same_files(old, new):
            continue
        if name == "vocab" and _same_vocab(old, new):
            continue
        differences.append(f"{name}: run {old!r}, given {new!r}")
    if differences:
        raise InputError(f"--resume: these settings differ from the run in {run_dir}: {'; '.join(differences)}; "
                         "drop them to continue the run, or start a new run with another --output")


def _same_files(old: List[str], new: List[str]) -> bool:
    try:
        return [p.resolve() for p in expand_paths(old)] == [p.resolve() for p in expand_paths(new)]
    except InputError:
        return False


def _same_vocab(old: str, new: str) -> bool:
    try:
        return Vocab.from_file(old) == Vocab.from_file(new)
    except InputError:
        return False
