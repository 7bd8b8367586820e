import numpy as np
import pytest
import torch

from spacy_elmo.training.softmax import Softmax, log_uniform_probs, sample_log_uniform


def test_the_sampler_draws_each_class_with_its_log_uniform_probability():
    """The probabilities the loss corrects by (log Q) must be the sampler's: compare them with the
    frequencies of 5,000 first draws (4 standard deviations of tolerance)."""
    rng = np.random.default_rng(0)
    first = np.array([sample_log_uniform(50, 1, rng)[0][0] for _ in range(5000)])
    frequencies = np.bincount(first, minlength=50) / len(first)
    p = log_uniform_probs(50)
    np.testing.assert_allclose(frequencies[:8], p[:8], rtol=0, atol=4 * np.sqrt(p[0] / len(first)))
    assert frequencies[25:].sum() == pytest.approx(p[25:].sum(), abs=0.02)


def test_sampler_draws_distinct_frequent_classes():
    rng = np.random.default_rng(0)
    sampled, tries = sample_log_uniform(1000, 100, rng)
    assert len(set(sampled.tolist())) == 100 and tries >= 100
    assert sampled.min() >= 0 and sampled.max() < 1000
    counts = np.zeros(1000)
    for _ in range(200):
        counts[sample_log_uniform(1000, 20, rng)[0]] += 1
    assert counts[:10].sum() > counts[-500:].sum()


def test_sampled_loss_approaches_full_loss_as_negatives_grow():
    torch.manual_seed(0)
    softmax = Softmax(300, 16)
    with torch.no_grad():
        softmax.bias.normal_()
    hidden = torch.randn(400, 16)
    targets = torch.from_numpy(np.random.default_rng(1).integers(0, 300, 400))
    full = softmax.full_loss(hidden, targets).item()
    errors = []
    for n in (10, 60, 200, 290):
        rng = np.random.default_rng(2)
        mean = np.mean([softmax.sampled_loss(hidden, targets, n, rng).item() for _ in range(20)])
        errors.append(abs(mean - full))
    assert errors[0] > errors[-1]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 0.02 * full


def test_sampled_loss_matches_the_tf_formula_with_accidental_hits_removed():
    torch.manual_seed(0)
    softmax = Softmax(50, 4)
    hidden = torch.randn(6, 4, dtype=torch.float64)
    softmax = softmax.double()
    targets = torch.tensor([0, 1, 2, 3, 10, 49])
    sampled, tries = sample_log_uniform(50, 8, np.random.default_rng(3))
    loss = softmax.sampled_loss(hidden, targets, 8, np.random.default_rng(3)).item()
    w, b, h = softmax.weight.detach().numpy(), softmax.bias.detach().numpy(), hidden.numpy()
    p = log_uniform_probs(50)
    log_q = np.log(1 - (1 - p) ** tries)
    expected = []
    for row, target in enumerate(targets.tolist()):
        true = h[row] @ w[target] + b[target] - log_q[target]
        negatives = [h[row] @ w[k] + b[k] - log_q[k] for k in sampled if k != target]
        expected.append(np.logaddexp.reduce([true] + negatives) - true)
    assert set(targets.tolist()) & set(sampled.tolist()), "the test needs at least one accidental hit"
    assert loss == pytest.approx(np.mean(expected), rel=1e-9)
