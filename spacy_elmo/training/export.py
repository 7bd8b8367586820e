"""`export`: a run's trained biLM in the layout its kind's users load (see each kind's `export`)."""
from __future__ import annotations

from pathlib import Path

from ..atomic import check_target
from .bilm_kind import ARCHIVE_SUFFIXES
from .models import model_from_checkpoint


def export(checkpoint: Path, out_dir: Path, with_softmax: bool = False, overwrite: bool = False) -> Path:
    """An LSTM run: options.json (inference layout) + weights.hdf5 (official layout) + vocab.txt; optionally
    softmax.pt, which only continued training needs. A transformer run: an AllenNLP model archive, a
    folder or, when `out_dir` ends in .tar.gz, a file (config.json, weights.th with the softmax,
    vocabulary/). The output appears complete or not at all."""
    out = Path(out_dir)
    check_target(out, is_dir=not out.name.endswith(ARCHIVE_SUFFIXES), overwrite=overwrite, inputs=[checkpoint])
    model, vocab, config = model_from_checkpoint(checkpoint)
    return config.kind.impl.export(model, vocab, config, out, with_softmax, overwrite, [Path(checkpoint)])
