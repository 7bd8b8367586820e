"""pretrain --precision bf16: mixed precision (bf16 products under torch.autocast, everything else fp32)."""
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch

from cli_helpers import cli
from spacy_elmo.bilm import precision
from spacy_elmo.bilm.char_ids import CharBatch
from spacy_elmo.bilm.batching import batch_layers
from spacy_elmo.bilm.loading import load_any_bilm
from spacy_elmo.bilm.weights import load_lstm_bilm
from spacy_elmo.errors import InputError
from spacy_elmo.training.checkpoint import load_checkpoint, run_config
from spacy_elmo.training.config import TrainConfig
from spacy_elmo.training.export import export
from spacy_elmo.training.lstm_lm import LstmLanguageModel
from spacy_elmo.training.trainer import forward_precision, train

from .helpers import KINDS, TINY_ARGS, log_records, losses, make_corpus, tiny_config


def test_products_are_bf16_but_their_sums_fp32():
    torch.manual_seed(0)
    x, weight, add = torch.randn(2, 16, 64), torch.randn(2, 64, 32), torch.randn(2, 16, 32)
    exact = torch.baddbmm(add, x, weight)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = precision.batched_product(x, weight, "fp32", add=add)
    assert mixed.dtype == torch.float32
    assert not torch.equal(mixed, exact), "autocast must make the product bf16"
    # a bf16 product: off by about 2^-8 of the product's size, not more
    assert (mixed - exact).abs().max() <= 2 ** -7 * torch.bmm(x.abs(), weight.abs()).max()
    # the sum with `add` is fp32: a bf16 sum would leave every element a bf16 number
    assert (mixed.bfloat16().float() != mixed).float().mean() > 0.9


def test_a_bf16_step_keeps_state_losses_and_gradients_fp32():
    torch.manual_seed(0)
    config = TrainConfig(train=["x"], vocab="v", output="o", lstm_dim=32, projection_dim=16,
                         filters=[[1, 8], [2, 8]], char_embedding_dim=4, precision="bf16")
    model = LstmLanguageModel(config.bilm_options(), n_classes=20, dropout=0.0)
    batch = CharBatch.from_sentences([["the", "cat", "sat"], ["a", "dog", "ran"]] * 2, 50, boundaries=False)
    char_ids, index = torch.from_numpy(batch.unique), torch.from_numpy(batch.index).view(2, 2, 3)
    targets = torch.randint(0, 20, (2, 2, 3))
    reference, _ = model(char_ids, index, targets, None)
    with forward_precision(config, torch.device("cpu")):
        losses_, (cell, hidden) = model(char_ids, index, targets, None)
    assert losses_.dtype == cell.dtype == hidden.dtype == torch.float32
    assert not torch.equal(losses_, reference)
    torch.testing.assert_close(losses_, reference, rtol=0.02, atol=0)
    losses_.mean().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.bilm.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("bilm", KINDS)
def test_bf16_training_falls_like_fp32_and_saves_fp32(tmp_path, bilm):
    root = make_corpus(tmp_path)
    curves, heldout = {}, {}
    for name in ("fp32", "bf16"):
        # n_negative_samples >= vocabulary: the logged loss is the full softmax's
        record = train(tiny_config(root, bilm, n_negative_samples=1000, max_steps=60, output=str(tmp_path / name),
                                   precision=name))
        curves[name], heldout[name] = losses(tmp_path / name), record["heldout"]["ppl"]
    fp32, bf16 = (np.mean(curves[name][-10:]) for name in ("fp32", "bf16"))
    assert curves["bf16"] != curves["fp32"], "the bf16 run must compute in bf16"
    assert bf16 < 0.85 * np.mean(curves["bf16"][:5])
    assert abs(bf16 - fp32) < 0.1 * fp32
    assert abs(heldout["bf16"] - heldout["fp32"]) < 0.1 * heldout["fp32"]
    ckpt = load_checkpoint(tmp_path / "bf16")
    assert ckpt["config"]["precision"] == "bf16"
    assert {r["precision"] for r in log_records(tmp_path / "bf16") if "loss" in r} == {"bf16"}
    assert all(t.dtype == torch.float32 for t in ckpt["model"].values() if t.is_floating_point())
    assert all(t.dtype == torch.float32 for s in ckpt["optimizer"]["state"].values() for t in s.values()
               if torch.is_tensor(t) and t.is_floating_point() and t.dim() > 0)


def test_bf16_resume_is_exact_and_may_switch_to_fp32(tmp_path):
    root = make_corpus(tmp_path)
    train(tiny_config(root, max_steps=14, heldout=[], output=str(tmp_path / "straight"), precision="bf16"))
    train(tiny_config(root, max_steps=6, heldout=[], output=str(tmp_path / "resumed"), precision="bf16"))
    saved = run_config(load_checkpoint(tmp_path / "resumed"), tmp_path / "resumed")
    assert saved.precision == "bf16"
    train(replace(saved, max_steps=14), resume=True)
    np.testing.assert_allclose(losses(tmp_path / "resumed"), losses(tmp_path / "straight"), rtol=0, atol=1e-6)
    train(replace(saved, max_steps=16, precision="fp32"), resume=True)
    assert [r["precision"] for r in log_records(tmp_path / "resumed")] == ["bf16"] * 14 + ["fp32"] * 2
    assert load_checkpoint(tmp_path / "resumed")["config"]["precision"] == "fp32"


@pytest.mark.slow
def test_exports_of_bf16_runs_are_fp32_and_load(tmp_path):
    root = make_corpus(tmp_path)
    batch = CharBatch.from_sentences([["the", "cat", "sat"], ["a", "dog", "walked", "to", "the", "river", "bank"]])
    train(tiny_config(root, max_steps=5, heldout=[], output=str(tmp_path / "lstm"), precision="bf16"))
    out = export(tmp_path / "lstm", tmp_path / "lstm-export")
    with h5py.File(out / "weights.hdf5", "r") as f:
        dtypes = set()
        f.visititems(lambda name, item: dtypes.add(item.dtype) if isinstance(item, h5py.Dataset) else None)
    assert dtypes == {np.dtype("float32")}
    train(tiny_config(root, "transformer", max_steps=5, heldout=[], output=str(tmp_path / "tr"), precision="bf16"))
    archive = export(tmp_path / "tr", tmp_path / "tr.tar.gz")
    for bilm in (load_lstm_bilm(out / "options.json", out / "weights.hdf5"), load_any_bilm(archive)):
        assert all(p.dtype == torch.float32 for p in bilm.parameters())
        with torch.no_grad():
            layers = batch_layers(bilm.eval(), batch)
        assert layers.dtype == torch.float32 and layers.shape[:3] == (3, 2, 9) and torch.isfinite(layers).all()


def test_precision_setting_and_flag(tmp_path):
    root = make_corpus(tmp_path)
    with pytest.raises(InputError, match=r"^unknown training precision 'fp16'; expected one of \('fp32', 'bf16'\)$"):
        tiny_config(root, precision="fp16")
    base = [root / "train", "--vocab", root / "vocab.txt", "-o", tmp_path / "run", *TINY_ARGS["lstm"]]
    bad = cli("pretrain", *base, "--precision", "int8")
    assert bad.exit_code == 2 and "'int8' is not one of fp32, bf16" in bad.output
    assert not (tmp_path / "run").exists()
    done = cli("pretrain", *base, "--precision", "bf16", "--max-steps", "2")
    assert done.exit_code == 0, done.output
    resumed = cli("pretrain", "-o", tmp_path / "run", "--resume", "--max-steps", "3")
    assert resumed.exit_code == 0, resumed.output
    assert [r["precision"] for r in log_records(tmp_path / "run")] == ["bf16"] * 3
