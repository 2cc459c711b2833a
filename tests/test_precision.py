"""`trainer.precision`: what `auto` and `mixed` become on each kind of machine."""

from __future__ import annotations

import pytest
import torch

from shared import devices


@pytest.mark.parametrize(
    ("precision", "computes_bf16", "expected"),
    [
        ("auto", True, "32-true"),  # auto keeps every CPU in fp32
        ("auto", False, "32-true"),
        ("mixed", True, "bf16-mixed"),  # mixed uses bf16 where the CPU has the units
        ("mixed", False, "32-true"),  # and not where oneDNN would emulate it
        ("bf16-mixed", False, "bf16-mixed"),  # a named precision is taken as asked
    ],
)
def test_cpu_precision(monkeypatch: pytest.MonkeyPatch, precision: str, computes_bf16: bool, expected: str) -> None:
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: computes_bf16)
    assert devices.resolve_precision("cpu", precision) == expected


@pytest.mark.parametrize("precision", ["auto", "mixed"])
def test_gpu_precision_follows_the_card(monkeypatch: pytest.MonkeyPatch, precision: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert devices.resolve_precision("gpu", precision) == "16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert devices.resolve_precision("gpu", precision) == "bf16-mixed"


def test_this_machine_is_named_with_its_instruction_set() -> None:
    assert torch.backends.cpu.get_cpu_capability() in devices.device_name_of_cpu()
