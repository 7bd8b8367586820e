"""scripts/run_comparison.py checks every corpus and vectors file its runs need before it starts one."""
import subprocess
import sys

from conftest import ROOT

SCRIPT = ROOT / "scripts" / "run_comparison.py"


def test_missing_inputs_are_named_with_the_command_that_makes_them_and_nothing_is_written(tmp_path):
    (tmp_path / "corpus" / "sst5").mkdir(parents=True)
    for split in ("train", "dev", "test"):
        (tmp_path / "corpus" / "sst5" / f"{split}.spacy").write_bytes(b"")
    result = subprocess.run([sys.executable, str(SCRIPT), "--tasks", "sst5", "ewt", "--systems", "vectors", "elmo",
                             "--seeds", "0"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert sorted(result.stderr.splitlines()) == [
        "Error: corpus/ewt/en_ewt-ud-dev.spacy is missing: make it with `python -m spacy project run convert-ewt`",
        "Error: corpus/ewt/en_ewt-ud-test.spacy is missing: make it with `python -m spacy project run convert-ewt`",
        "Error: corpus/ewt/en_ewt-ud-train.spacy is missing: make it with `python -m spacy project run convert-ewt`",
        "Error: corpus/vectors/en_floret is missing: make it with `python -m spacy project run vectors`",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]
