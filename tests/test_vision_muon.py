"""Muon beside SGD (projects/vision/muon.py) and airbench's Muon recipe trained by Lightning."""

from __future__ import annotations

import pytest
import torch

from projects.vision.airbench import AirbenchMuon
from projects.vision.muon import MuonSGD, orthogonalise
from tests.test_vision_models import TINY_AIRBENCH, _fit, _WhiteningBias, images, labels


@pytest.mark.parametrize("shape", [(16, 72), (72, 16)], ids=["wide", "tall"])
def test_orthogonalise_evens_out_the_singular_values_and_keeps_the_directions(shape: tuple[int, int]) -> None:
    generator = torch.Generator().manual_seed(0)
    scales = torch.logspace(-1, 1, min(shape))  # singular values over two decades
    left = torch.linalg.qr(torch.randn(shape[0], min(shape), generator=generator)).Q
    right = torch.linalg.qr(torch.randn(shape[1], min(shape), generator=generator)).Q
    matrix = left @ torch.diag(scales) @ right.T
    result = orthogonalise(matrix)
    assert result.shape == matrix.shape
    singular = torch.linalg.svdvals(result)
    assert singular.max() < 1.6 and singular.max() / singular.min() < 5  # 100× apart before, 3 iterations
    assert torch.linalg.svdvals(matrix).max() / torch.linalg.svdvals(matrix).min() > 99
    assert (left.T @ result @ right).diagonal().min() > 0  # each direction kept its sign


def test_plain_groups_step_exactly_as_torch_sgd_and_filter_groups_are_renormalised() -> None:
    torch.manual_seed(0)
    plain, reference, filters = (torch.nn.Parameter(torch.randn(5, 3)) for _ in range(3))
    reference.data.copy_(plain.data)
    ours = MuonSGD(
        [
            {"params": [plain], "lr": 0.1, "weight_decay": 0.01},
            {"params": [filters], "lr": 0.05, "orthogonalise": True},
        ],
        momentum=0.9,
    )
    torchs = torch.optim.SGD([reference], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    for step in range(4):
        gradient = torch.randn(5, 3, generator=torch.Generator().manual_seed(step))
        plain.grad, reference.grad, filters.grad = gradient.clone(), gradient.clone(), gradient.clone()
        before = filters.detach().clone()
        ours.step()
        torchs.step()
        assert torch.allclose(plain, reference, atol=1e-6)
        renormalised = before * (5**0.5 / before.norm())  # unit mean square per row, before the step
        update = gradient + 0.9 * ours.state[filters]["momentum_buffer"]  # Nesterov
        assert torch.allclose(filters, renormalised - 0.05 * orthogonalise(update), atol=1e-6)


def test_airbench_muon_trains_in_lightning_with_its_falling_rates_and_frozen_bias() -> None:
    torch.manual_seed(0)
    model = AirbenchMuon(widths=TINY_AIRBENCH, whiten_bias_epochs=1, batch_size=16, augment={"seed": 0})
    model.fit_on_train(images(64), labels(64).numpy())
    assert model.head.weight.std().item() == pytest.approx(1.0, rel=1e-5)
    whitening, filters = model.whiten.weight.clone(), model.body[1][0].weight.clone()
    bias = _WhiteningBias()
    trainer = _fit(model, callbacks=[bias])
    whiten_bias, norm_biases, head, conv_filters = trainer.optimizers[0].param_groups
    assert conv_filters["orthogonalise"] and conv_filters["momentum"] == 0.6 and not head["orthogonalise"]
    falls = trainer.lr_scheduler_configs[0].scheduler.lr_lambdas  # 8 steps, the first epoch's 4 for the bias
    assert [falls[0](step) for step in (0, 2, 4, 6)] == [1.0, 0.5, 0.0, 0.0]
    assert [falls[3](step) for step in (0, 4, 8)] == [1.0, 0.5, 0.0] and conv_filters["lr"] == whiten_bias["lr"] == 0
    assert norm_biases["initial_lr"] * norm_biases["weight_decay"] == pytest.approx(2e-6 * 16)  # decay per step
    assert torch.equal(model.whiten.weight, whitening) and not torch.equal(model.body[1][0].weight, filters)
    assert bias.biases[0].abs().sum() > 0 and torch.equal(bias.biases[1], bias.biases[0])  # trained, then frozen
    assert model.logit_scale == pytest.approx(1 / TINY_AIRBENCH["block3"])
