"""A `spacy train` logger that also records the training speed: spaCy's console table, plus one JSON
line per evaluation with the words trained on and the seconds since training began, so that
words/s per epoch (the first one runs the biLM, later ones read its cache) can be worked out."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any, Callable, Dict, Optional, Tuple

import srsly
from spacy.language import Language
from spacy.util import registry


@registry.loggers("spacy-elmo.SpeedLogger.v1")
def speed_logger(path: Optional[str] = None, progress_bar: bool = False) -> Callable:
    console = registry.loggers.get("spacy.ConsoleLogger.v3")(progress_bar="eval" if progress_bar else None)

    def setup(nlp: Language, stdout: IO = sys.stdout, stderr: IO = sys.stderr) -> Tuple[Callable, Callable]:
        log_console, finish_console = console(nlp, stdout, stderr)
        stream = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            stream = open(path, "w", encoding="utf8")

        def log_step(info: Optional[Dict[str, Any]]) -> None:
            log_console(info)
            if info is not None and stream is not None:
                record = {key: info[key] for key in ("epoch", "step", "words", "seconds", "score")}
                record["other_scores"] = {k: v for k, v in info["other_scores"].items() if isinstance(v, (int, float))}
                stream.write(srsly.json_dumps(record) + "\n")
                stream.flush()

        def finalize() -> None:
            finish_console()
            if stream is not None:
                stream.close()

        return log_step, finalize

    return setup
