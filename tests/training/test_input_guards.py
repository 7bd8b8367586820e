"""Text and options a user brings to the training commands say what is wrong with them (issue 25): a
whitespace-only corpus, a corpus mostly outside the vocabulary, a fractional filter width, a binary file
among `prepare --n-process 2`'s inputs; and `evaluate` scores every held-out token."""
import json
import logging

import pytest

from cli_helpers import cli, fails, one_error, run
from spacy_elmo.training.config import TrainConfig
from spacy_elmo.training.models import model_from_checkpoint
from spacy_elmo.training.trainer import evaluate, train

from .helpers import make_corpus, tiny_config


def test_a_whitespace_only_corpus_says_so(tmp_path):
    (tmp_path / "blank.txt").write_text("  \n\t\n \n", encoding="utf8")
    (tmp_path / "empty.txt").write_bytes(b"")
    fails(cli("vocab", tmp_path / "blank.txt", "-o", tmp_path / "vocab.txt"),
          r"blank\.txt: the file holds only whitespace \(7 bytes\), no text")
    fails(cli("vocab", tmp_path / "empty.txt", "-o", tmp_path / "vocab.txt"),
          r"empty\.txt: the file is empty \(0 bytes\)")
    assert not (tmp_path / "vocab.txt").exists()


def test_a_corpus_mostly_outside_the_vocabulary_warns_once_with_the_rate(tmp_path, caplog):
    root = make_corpus(tmp_path)
    (root / "other.txt").write_text("<S>\n</S>\n<UNK>\nthe\n.\nzebra\n", encoding="utf8")
    with caplog.at_level(logging.WARNING):
        train(tiny_config(root, vocab=str(root / "other.txt"), max_steps=2, heldout=[]))
    warnings = [r.getMessage() for r in caplog.records if "not in the vocabulary" in r.getMessage()]
    assert len(warnings) == 1, warnings
    rate = float(warnings[0].split("%")[0])
    assert 60 < rate < 100 and "check that --vocab was built from this text" in warnings[0]


def test_a_corpus_in_the_vocabulary_does_not_warn(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        train(tiny_config(make_corpus(tmp_path), max_steps=2, heldout=[]))
    assert not [r for r in caplog.records if "not in the vocabulary" in r.getMessage()]


def test_a_fractional_filter_width_in_an_options_file_is_refused(fixture_dir, tmp_path):
    options = json.loads((fixture_dir / "options.json").read_text())
    options["char_cnn"]["filters"][0][0] = 1.9
    (tmp_path / "options.json").write_text(json.dumps(options))
    (tmp_path / "in.txt").write_text("a b\n")
    fails(cli("embed", tmp_path / "in.txt", tmp_path / "out.hdf5", "--options-file", tmp_path / "options.json",
              "--weight-file", fixture_dir / "lm_weights.hdf5"),
          r"options\.json: char_cnn\.filters has \[1\.9, 4\]: a width and a count must be whole numbers")
    assert not (tmp_path / "out.hdf5").exists()


def test_prepare_workers_stop_quietly_when_one_input_is_binary(tmp_path):
    """The parent stops its workers (SIGTERM) on the first failure; they must not print tracebacks."""
    (tmp_path / "a-binary.txt").write_bytes(bytes(range(256)) * 20)
    for k in range(3):
        (tmp_path / f"text-{k}.txt").write_text("The cat sat on the mat. " * 500, encoding="utf8")
    result = run("prepare", *sorted(tmp_path.glob("*.txt")), "-o", tmp_path / "out", "--n-process", 2)
    assert result.returncode == 1
    one_error(result.stderr, r"a-binary\.txt: looks like a binary file")
    assert "Interrupted" not in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_evaluate_scores_every_held_out_token(runs, batch_size):
    """Each direction predicts every token and one sentence boundary per sentence."""
    heldout = runs / "heldout.txt"
    expected = sum(len(line.split()) + 1 for line in heldout.read_text().splitlines())
    model, vocab, config = model_from_checkpoint(runs / "lstm")
    result = evaluate(model, vocab, [str(heldout)], config, batch_size)
    assert result["tokens"] == expected


def test_evaluate_from_the_command_line_counts_every_token(trained, tmp_path):
    (tmp_path / "short.txt").write_text("the cat .\n")
    result = cli("evaluate", trained / "run", tmp_path / "short.txt")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tokens"] == 4


def test_train_config_with_a_fractional_filter_width_is_refused(tmp_path):
    """From Python (the command line refuses `--filters 1.9:4` as not a width:count pair of integers)."""
    with pytest.raises(ValueError, match=r"training setting: filters has \[1\.9, 4\]: a width and a count must be "
                                         r"whole numbers"):
        TrainConfig(train=[], vocab="v", output=str(tmp_path / "run"), filters=[[1.9, 4]])
