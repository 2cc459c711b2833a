"""A callback that sends the training process a signal at a chosen step: kills and interruptions, on cue."""

from __future__ import annotations

import os

from lightning import Callback, LightningModule, Trainer


class SignalAt(Callback):
    """Send `signal` to this process after batch `batch` of epoch `epoch` (0-based), as a scheduler or a user would."""

    def __init__(self, signal: int, epoch: int, batch: int = 0) -> None:
        self.signal, self.epoch, self.batch = signal, epoch, batch

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *arguments: object) -> None:
        if trainer.current_epoch == self.epoch and arguments[-1] == self.batch:  # the batch index comes last
            os.kill(os.getpid(), self.signal)
