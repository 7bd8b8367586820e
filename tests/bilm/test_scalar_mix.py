"""ScalarMix (elmo-spec §6): gamma * sum_j softmax(w)_j * h_j, optional masked layer norm."""
import numpy as np
import pytest
import torch

from spacy_elmo.errors import ElmoError
from spacy_elmo.bilm.scalar_mix import ScalarMix


def layers(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_init_is_the_mean_of_the_layers():
    x = layers(3, 2, 5, 8)
    np.testing.assert_allclose(ScalarMix(3)(x).detach().numpy(), x.mean(dim=0).numpy(), atol=1e-6)
    packed = x.reshape(3, 10, 8)
    np.testing.assert_allclose(ScalarMix(3)(packed).detach().numpy(), packed.mean(dim=0).numpy(), atol=1e-6)
    assert ScalarMix(3)(list(packed)).shape == (10, 8)


def test_weights_and_gamma_follow_the_formula():
    x = layers(3, 4, 6)
    mix = ScalarMix(3)
    with torch.no_grad():
        mix.weights.copy_(torch.tensor([0.1, 0.3, 0.5]))
        mix.gamma.fill_(1.1)
    w = np.exp([0.1, 0.3, 0.5])
    w /= w.sum()
    expected = 1.1 * np.einsum("l,lnd->nd", w, x.numpy())
    np.testing.assert_allclose(mix(x).detach().numpy(), expected, atol=1e-6)


def test_gradient_reaches_weights_and_gamma():
    mix = ScalarMix(3)
    (mix(layers(3, 4, 6)) ** 2).sum().backward()
    assert mix.weights.grad is not None and float(mix.weights.grad.abs().sum()) > 0
    assert mix.gamma.grad is not None and float(mix.gamma.grad.abs()) > 0
    frozen = ScalarMix(3, trainable=False)
    assert not any(p.requires_grad for p in frozen.parameters())


def test_layer_norm_statistics_ignore_masked_positions():
    x = layers(3, 2, 4, 8)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    noisy = x.clone()
    noisy[:, ~mask] = 1000.0
    mix = ScalarMix(3, do_layer_norm=True)
    clean_out, noisy_out = mix(x, mask), mix(noisy, mask)
    np.testing.assert_allclose(clean_out[mask].detach().numpy(), noisy_out[mask].detach().numpy(), atol=1e-5)
    single = ScalarMix(1, do_layer_norm=True)(x[:1], mask)[mask].detach()
    assert abs(float(single.mean())) < 1e-5 and abs(float(single.var(unbiased=False)) - 1) < 1e-4
    unmasked = ScalarMix(3, do_layer_norm=True)(noisy, None)
    assert not torch.allclose(unmasked[mask], noisy_out[mask], atol=1e-3)


def test_layer_count_and_mask_shape_are_checked():
    with pytest.raises(ElmoError, match="built for 3 layers, found 2"):
        ScalarMix(3)(layers(2, 4, 6))
    with pytest.raises(ElmoError, match="mask has shape"):
        ScalarMix(3, do_layer_norm=True)(layers(3, 4, 6), torch.ones(5, dtype=torch.bool))
    with pytest.raises(ElmoError, match="at least one layer"):
        ScalarMix(0)
