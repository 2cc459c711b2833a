"""Lightning modules: a `Trainer` built from the `trainer`, `logger` and `callbacks` groups; prediction without one."""

from __future__ import annotations

import logging
import re
import signal
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import move_data_to_device
from lightning.pytorch.utilities.compile import to_uncompiled
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from shared.capabilities import CarriesPreprocessor
from shared.checks import whole
from shared.config import build
from shared.data import ProjectData, inference_batches
from shared.devices import device_name, require_cuda, resolve_precision
from shared.errors import Interrupted, RunNotFoundError, UsageError
from shared.fitters.base import FitResult, Fitter, first_line, preprocessed, read_plain_checkpoint
from shared.fitters.estimator_files import load_estimator, save_estimator
from shared.io import atomic_path

log = logging.getLogger(__name__)


class History(Callback):
    """Records every epoch's logged metrics, whatever loggers are configured, for the learning curves. Its rows
    travel in the checkpoint, so a resumed run's curves start at epoch 1, not at the resumption."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row = {"epoch": float(trainer.current_epoch)}
        for key, value in trainer.callback_metrics.items():
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                row[key] = float(value)
        self.rows.append(row)


class LightningFitter(Fitter):
    """Lightning modules, trained by a `Trainer` built from the `trainer`, `logger` and `callbacks` groups.

    A module that `CarriesPreprocessor` (a tabular model's `ColumnTransformer`, fitted on the train split
    when the project builds the model) has every input sent through it before the data's loader, and the
    preprocessor is saved beside the checkpoint.
    """

    artifact = "model.ckpt"
    preprocessor_artifact = "preprocessor.skops"

    def build_trainer(self, cfg: DictConfig, run_dir: Path, extra_callbacks: list[Callback]) -> Trainer:
        """The training Trainer: the `trainer` group's arguments, the `logger` and `callbacks` groups."""
        loggers = [instantiate(entry) for entry in (cfg.get("logger") or {}).values() if entry]
        callbacks = [instantiate(entry) for entry in (cfg.get("callbacks") or {}).values() if entry]
        return Trainer(
            default_root_dir=str(run_dir),
            logger=loggers or False,
            callbacks=[*callbacks, *extra_callbacks],
            **_trainer_options(cfg),
        )

    def fit(self, model: LightningModule, data: ProjectData, cfg: DictConfig, run_dir: Path) -> FitResult:
        history = History()
        compiled = compile_options(OmegaConf.to_container(cfg.trainer, resolve=True).get("compile"))  # type: ignore[union-attr]
        trainer = self.build_trainer(cfg, run_dir, [history])
        train_loader = data.loader(preprocessed(model, data.inputs("train")), data.targets("train"), train=True)
        val_loader = (
            data.loader(preprocessed(model, data.inputs("val")), data.targets("val")) if "val" in data.splits else None
        )
        started = time.perf_counter()
        with warnings.catch_warnings():  # without a val split the kept weights are the last: said below, not warned
            warnings.filterwarnings("ignore", ".*`validation_step` but have no `val_dataloader`.*")
            # Lightning's way: fit the torch.compile'd module; it unwraps it, compiles the steps, and saves the
            # plain module's weights. Evaluation and `predict` then run the plain module (any batch size).
            fitted = model if compiled is None else torch.compile(model, **compiled)
            try:
                _fit_or_raise_interrupted(trainer, fitted, train_loader, val_loader, cfg.get("resume"))
            finally:
                if compiled is not None:
                    to_uncompiled(model)
        seconds = time.perf_counter() - started
        checkpoint = trainer.checkpoint_callback
        if isinstance(checkpoint, ModelCheckpoint) and checkpoint.monitor and checkpoint.best_model_path:
            log.info(
                "best %s = %.4f at %s",
                checkpoint.monitor,
                float(checkpoint.best_model_score or 0),
                checkpoint.best_model_path,
            )
            model.load_state_dict(_read_state_dict(Path(checkpoint.best_model_path)))
        else:
            log.info("no monitored metric: keeping the weights of the last epoch")
        samples = len(data.targets("train")) * trainer.current_epoch
        return FitResult(
            seconds=seconds,
            samples_seen=samples,
            device=device_name(trainer),
            precision=str(trainer.precision),
            epochs=trainer.current_epoch,
            history=history.rows,
            is_global_zero=trainer.is_global_zero,
        )

    def predict(
        self, model: LightningModule, data: ProjectData, inputs: Any, device: torch.device | None = None
    ) -> np.ndarray:
        """The module's `predict_step` over the data's loader, in inference mode on `device`: no Trainer."""
        device = device or torch.device("cpu")
        if model.device != device:  # moving walks every module: per request (serve), only when it is needed
            model.to(device)
        if model.training:
            model.eval()
        outputs = []
        with torch.inference_mode():
            for index, batch in enumerate(inference_batches(data.loader(preprocessed(model, inputs)))):
                outputs.append(model.predict_step(move_data_to_device(batch, device), index).float().cpu())
        return torch.cat(outputs).numpy()

    def save(self, model: LightningModule, run_dir: Path) -> Path:
        path = run_dir / self.artifact
        with atomic_path(path) as temporary:
            # hyper_parameters: what a model built from the data (sizes of a vocabulary, of a catalogue) needs
            # besides its config to be rebuilt by `load`.
            torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, temporary)
        if isinstance(model, CarriesPreprocessor):
            save_estimator(model.preprocessor, run_dir / self.preprocessor_artifact)
        return path

    def load(self, model_cfg: DictConfig, run_dir: Path, trusted: tuple[str, ...]) -> LightningModule:
        path = run_dir / self.artifact
        checkpoint = read_plain_checkpoint(path, "loaded", "retrain the run.")
        if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
            raise RunNotFoundError(f"{path} holds no state_dict of weights.", "retrain the run.")
        hyper_parameters = checkpoint.get("hyper_parameters") or {}
        saved = {key: value for key, value in dict(hyper_parameters).items() if key not in model_cfg}
        try:
            model = build(model_cfg, **saved)  # a PortfolioError from the constructor stays readable
        except InstantiationException as error:  # the config and the checkpoint's hyper-parameters disagree
            raise RunNotFoundError(
                f"the model of {run_dir / 'config.yaml'} cannot be built from it and {path.name} "
                f"({first_line(error.__cause__ or error)}).",
                "retrain the run.",
            ) from error
        try:
            model.load_state_dict(checkpoint["state_dict"])
        except RuntimeError as error:  # missing or unexpected keys, other shapes: weights of another model
            raise RunNotFoundError(
                f"{path} does not fit the model its config.yaml describes ({first_line(error)}).", "retrain the run."
            ) from error
        if isinstance(model, CarriesPreprocessor):
            model.preprocessor = load_estimator(run_dir / self.preprocessor_artifact, trusted)
        model.eval()
        return model

    @staticmethod
    def parameter_count(model: LightningModule) -> int:
        return sum(parameter.numel() for parameter in model.parameters())


def _fit_or_raise_interrupted(
    trainer: Trainer, model: LightningModule, train_loader: Any, val_loader: Any, resume: str | None
) -> None:
    """`Trainer.fit` (from `resume`, a full checkpoint, when given), with a signal turned into `Interrupted`.

    Lightning answers SIGTERM with `SIGTERMException` (a `SystemExit` of code 0) and Ctrl-C with `sys.exit(1)`;
    both would otherwise end the command as if it had finished or failed, not as interrupted.
    """
    try:
        trainer.fit(model, train_dataloaders=train_loader, val_dataloaders=val_loader, ckpt_path=resume)
    except SIGTERMException as stop:
        raise Interrupted(signal.SIGTERM) from stop
    except SystemExit as stop:
        if trainer.interrupted:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignores further Ctrl-C
            raise Interrupted(signal.SIGINT) from stop
        raise
    if trainer.interrupted:
        raise Interrupted(signal.SIGINT)


_COUNTS = {
    "max_epochs": 1,
    "min_epochs": 0,
    "log_every_n_steps": 1,
    "check_val_every_n_epoch": 1,
    "num_sanity_val_steps": -1,
    "num_nodes": 1,
    "accumulate_grad_batches": 1,
}


def check_trainer_options(options: dict[str, Any]) -> None:
    """Refuse trainer values Lightning would take and fail on later (`max_epochs=abc`), or that make no sense
    (`max_epochs=0`: an untrained model saved as a finished run)."""
    for name, least in _COUNTS.items():
        if options.get(name) is not None:
            options[name] = whole(options[name], f"trainer.{name}", minimum=least)
    clip = options.get("gradient_clip_val")
    if clip is not None and (not isinstance(clip, int | float) or isinstance(clip, bool) or clip < 0):
        raise UsageError(f"trainer.gradient_clip_val={clip} is not a non-negative number.", "use null (off) or 1.0.")
    check_max_time(options.get("max_time"))
    for name in ("limit_train_batches", "limit_val_batches", "val_check_interval", "overfit_batches"):
        value = options.get(name)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool) or value < 0):
            raise UsageError(f"trainer.{name}={value} is not a count or a fraction.", f"e.g. trainer.{name}=0.5.")


def check_max_time(value: Any) -> None:
    """`trainer.max_time` as Lightning's Timer takes it ("DD:HH:MM:SS", or a mapping of timedelta fields such as
    {minutes: 5}), refused before the run starts rather than as a traceback from inside the Trainer."""
    example = 'trainer.max_time="00:00:05:00" (5 minutes) or trainer.max_time={minutes: 5}'
    if value is None:
        return
    if isinstance(value, str):
        if re.fullmatch(r"\d+:\d\d:\d\d:\d\d", value.strip()):
            return
        raise UsageError(f"trainer.max_time={value!r} is not a duration in the form DD:HH:MM:SS.", f"use {example}.")
    if isinstance(value, Mapping):
        fields = {"weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds"}
        unknown = sorted(set(map(str, value)) - fields)
        if unknown:
            raise UsageError(
                f"trainer.max_time has {', '.join(unknown)}, which are not parts of a duration.",
                f"use some of {', '.join(sorted(fields))}, e.g. {example}.",
            )
        numbers = all(isinstance(part, int | float) and not isinstance(part, bool) for part in value.values())
        if numbers and all(part >= 0 for part in value.values()):
            return
        raise UsageError(
            f"trainer.max_time={dict(value)} has a part that is not a number of at least 0.", f"use {example}."
        )
    raise UsageError(f"trainer.max_time={value!r} is not a duration.", f"use {example}, or null for no limit.")


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_options(value: Any) -> dict[str, Any] | None:
    """`trainer.compile` as `torch.compile` arguments, or None for off: false/null (off), true (the default mode),
    a mode name, or a mapping of `torch.compile` arguments (`{backend: eager}`, `{mode: max-autotune}`)."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, str) and value in COMPILE_MODES:
        return {"mode": value}
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"mode", "backend", "fullgraph", "dynamic", "options"})
        if not unknown:
            return dict(value)
        raise UsageError(
            f"trainer.compile has {', '.join(unknown)}, which are not torch.compile arguments.",
            "use mode, backend, fullgraph, dynamic or options.",
        )
    raise UsageError(
        f"trainer.compile={value!r} is neither on/off nor a torch.compile mode.",
        f"use true, false, one of {', '.join(COMPILE_MODES)}, or a mapping such as {{backend: eager}}.",
    )


def _trainer_options(cfg: DictConfig) -> dict[str, Any]:
    """The `trainer` group as Trainer arguments, with `precision: auto` resolved and a clear error for a missing GPU.
    `compile` is the fitter's, not a Trainer argument."""
    options: dict[str, Any] = OmegaConf.to_container(cfg.trainer, resolve=True)  # type: ignore[assignment]
    options.pop("compile", None)  # checked by `fit`, before it builds the Trainer
    check_trainer_options(options)
    if str(options.get("accelerator")) in ("gpu", "cuda"):
        require_cuda()
    options["precision"] = resolve_precision(str(options.get("accelerator", "auto")), options.get("precision"))
    return options


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
