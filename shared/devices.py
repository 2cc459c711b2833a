"""Which device a run trains and predicts on, what it is called in a run's records, and which precision it uses.

A CPU's name carries its instruction set (AVX2, AVX512, bf16 units), since that sets its speed more than its core
count, so figures measured on different machines can be told apart.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning import Trainer
from omegaconf import DictConfig

from shared.errors import UsageError


def inference_device(trainer_cfg: DictConfig | None) -> torch.device:
    """The device `evaluate`, `predict` and `serve` run a network on: what the `trainer` group asks for."""
    accelerator = str((trainer_cfg or {}).get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda"):
        require_cuda()
        return torch.device("cuda")
    if accelerator == "auto" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def require_cuda() -> None:
    """Refuse a GPU run on a machine whose torch sees no CUDA device, with what to do instead."""
    if not torch.cuda.is_available():
        raise UsageError(
            "the trainer asks for a GPU (trainer.accelerator=gpu), but torch finds no CUDA device here.",
            "use trainer=auto or trainer=cpu, or run on a machine with an NVIDIA GPU and a CUDA build of torch.",
        )


def device_name(trainer: Trainer) -> str:
    """A readable name for the device a trainer runs on."""
    device = trainer.strategy.root_device
    if device.type == "cuda":
        gpus = f"{trainer.num_devices}x " if trainer.num_devices > 1 else ""
        return f"cuda ({gpus}{torch.cuda.get_device_name(device)})"
    return device_name_of_cpu()


def device_name_of_cpu() -> str:
    """The threads and instruction set (AVX2, AVX512, …), which set a CPU's speed more than its cores do."""
    bf16 = ", bf16 units" if cpu_computes_bf16() else ""
    return f"cpu ({torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}{bf16})"


def cpu_computes_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX). Without it oneDNN emulates bf16, and a
    bf16 convolution runs about 10× slower than in fp32 (measured on an AVX2 EPYC), so mixed precision on a CPU
    pays only here. torch exposes the test only under these private names."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_precision(accelerator: str, precision: Any) -> Any:
    """`precision: auto` means bf16 mixed precision on GPUs that have it, fp16 mixed on older GPUs, fp32 on CPUs.
    `precision: mixed` is the same, but bf16 mixed on CPUs too where they compute bf16 in hardware: for
    networks that keep their accuracy in bf16 (vision's CPU presets), about twice fp32's speed there."""
    if precision not in ("auto", "mixed"):
        return precision
    uses_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if not uses_gpu:
        return "bf16-mixed" if precision == "mixed" and cpu_computes_bf16() else "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
