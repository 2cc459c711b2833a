"""The contract between the core and a project: what a project must say about itself, and what it may add.

A project owns its data, its models and its metrics; everything else (dispatch, runs, training,
evaluation and prediction flows, reports) is the core's. A project subclasses `Project`, fills in
`name`, `metrics` and `score` (and, for `predict`, `parse_record`, `read_file`, `prediction_columns`),
and hands an instance to `shared.cli.main`. Defining the subclass registers it (`shared.registry`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from omegaconf import DictConfig

from shared.capabilities import FitsOnTrain
from shared.config import build
from shared.data import ProjectData, data_options
from shared.errors import UsageError
from shared.metrics import Metrics
from shared.monitor.features import Features

if TYPE_CHECKING:
    from shared.api_schema import RecordSchema
    from shared.runs import Run


@dataclass
class Evaluation:
    """One split's inputs and targets, the model's outputs for them, and the metrics computed from them."""

    split: str
    inputs: Any
    targets: Any
    outputs: Any
    metrics: dict[str, float]


@dataclass
class PredictItem:
    """One input of `predict`: its name, and either the model input or why it could not be read."""

    name: str
    value: Any = None
    error: str | None = None


@dataclass(frozen=True)
class Command:
    """A verb of the command line: its name, one line of help, and the function that runs it.

    `run` gets the project and the composed config of the command and returns an exit code (None means 0).
    """

    name: str
    summary: str
    run: Callable[[Project, DictConfig], int | None]


class Project:
    """Subclass per project. Class attributes describe it; methods supply its data, models and metrics."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    intended_use: ClassVar[str] = ""
    limitations: ClassVar[str] = ""
    metrics: ClassVar[Metrics]
    # The folder of train.yaml and the project's groups; None means configs/<name>. A project that lives
    # elsewhere (the one in tests/) names its own.
    config_dir: ClassVar[Path | None] = None
    # Config keys whose command-line values are free text (`text=it's great, really`): the CLI quotes them
    # for Hydra, so commas, quotes and `${` reach the project verbatim instead of being parsed as grammar.
    free_text_keys: ClassVar[tuple[str, ...]] = ()
    predict_usage: ClassVar[str] = "input=PATH output=predictions.csv"
    # `_target_`s outside the project's own package that a run's config may instantiate when the run is loaded
    # (the library estimators its model configs name). A run folder is data: it gets no other callable.
    trusted_targets: ClassVar[tuple[str, ...]] = ()

    registered: ClassVar[dict[str, type[Project]]] = {}

    def __init_subclass__(cls, **options: Any) -> None:
        super().__init_subclass__(**options)
        if "name" in cls.__dict__:
            Project.registered[cls.name] = cls

    @property
    def package(self) -> str:
        """The project's own package as a module prefix (`projects.mnist.`): the code a run folder may name."""
        return type(self).__module__.rsplit(".", 1)[0] + "."

    # --- data and models ------------------------------------------------------------------
    def build_data(self, cfg: DictConfig, paths: DictConfig) -> ProjectData:
        """The data object of `cfg.data`, told where the mirror and the cache are (not prepared yet)."""
        return build(data_options(cfg.data), mirror_dir=paths.get("mirror_dir"), cache_dir=paths.cache_dir)

    def build_model(self, cfg: DictConfig, data: ProjectData) -> Any:
        """The model of `cfg.model`: a LightningModule or a scikit-learn estimator, given plain Python values.

        A model that `FitsOnTrain` (a vocabulary, fitted preprocessing, sizes taken from the data) gets the
        train split before training, so its project need not override this.
        """
        model = build(cfg.model, **self.model_options(data))
        if isinstance(model, FitsOnTrain):
            model.fit_on_train(data.inputs("train"), data.targets("train"))
        return model

    def model_options(self, data: ProjectData) -> dict[str, Any]:
        """Constructor arguments every model of this project takes from the data (a catalogue's size)."""
        return {}

    def metrics_for(self, data: ProjectData) -> Metrics:
        """The declaration that applies to this data; a project scored two ways (ratings or ranking) picks one."""
        return self.metrics

    # --- evaluation -----------------------------------------------------------------------
    def outputs(self, raw: np.ndarray) -> Any:
        """The models' raw outputs (what `predict_step` or `predict` return, stacked) as this project's type:
        probabilities stay an array; a value with an interval becomes a small record."""
        return raw

    def score(self, data: ProjectData, split: str, outputs: Any) -> dict[str, float]:
        """Metrics of the model's outputs on `split` of `data`, unprefixed (`acc`, `rmse`); the core adds
        `val/`, `test/`. Every name must be declared in `metrics`."""
        raise NotImplementedError(f"{self.name} must define score")

    def report(self, evaluation: Evaluation, plots_dir: Path, data: ProjectData, model: Any) -> list[Path]:
        """Project-specific plots of the test evaluation (and of the data). Returns the images written."""
        return []

    def corrupted_inputs(self, data: ProjectData, split: str) -> Iterator[tuple[str, Any]]:
        """Named corrupted copies of `split`'s inputs (noisy, blurred, compressed images), one at a time. The core
        predicts and scores each as it does the split: `<split>/<name>_<headline>`, and their mean
        `<split>/corruption_<headline>`; the project declares those names in `metrics`. None by default."""
        return iter(())

    # --- command line ---------------------------------------------------------------------
    def commands(self) -> dict[str, Command]:
        """Commands this project adds to the core's table; each needs a config of its name."""
        return {}

    # --- prediction -----------------------------------------------------------------------
    def command_line_record(self, cfg: DictConfig) -> Any | None:
        """A record given on the command line itself (`text=...`, `user=196 k=10`), or None."""
        return None

    def read_file(self, path: Path, run: Run, cfg: DictConfig) -> list[PredictItem]:
        """The items of an `input=` file or folder, each parsed with `parse_record` (`shared.predict.parse_item`)."""
        raise UsageError(f"{self.name} has no file input for predict.", f"predict {self.predict_usage}")

    def parse_record(self, payload: Any, run: Run, cfg: DictConfig) -> Any:
        """One record (a line of a file, a JSON body over HTTP) as a model input; a `RecordError` says what is
        wrong with it. Everything that reads inputs is built on this."""
        raise NotImplementedError(f"{self.name} has no predict")

    def stack_inputs(self, values: list[Any]) -> Any:
        """Put parsed records together as the models' input type."""
        return values

    def prediction_columns(self, outputs: Any) -> list[dict[str, Any]]:
        """One dict of output columns (label, probability, ...) per input, from the typed outputs."""
        raise NotImplementedError(f"{self.name} has no predict")

    def annotate_predictions(
        self, run: Run, values: list[Any], columns: list[dict[str, Any]], cfg: DictConfig
    ) -> list[dict[str, Any]]:
        """Columns that need the inputs as well as the outputs (the text itself, warnings); the rows to write."""
        return columns

    @property
    def reads_records(self) -> bool:
        """Whether this project predicts from records (defines `parse_record`): what `predict` and `/predict` need."""
        return type(self).parse_record is not Project.parse_record

    def request_schema(self, run: Run) -> RecordSchema | None:
        """How `serve` documents one record (`shared.api_schema`): a pydantic model of its fields, an example that
        works, whether an uploaded file is a record. Only documentation: `parse_record` still checks every record,
        so the API refuses what `predict` refuses, with the same message. By default any JSON object; None (no
        `/predict`) for a project without records."""
        from shared.api_schema import generic_record_schema

        return generic_record_schema() if self.reads_records else None

    def predict_rows(self, run: Run, values: list[Any], cfg: DictConfig) -> list[list[dict[str, Any]]]:
        """The answer to each parsed record: a list of rows (one, usually; a top-k list gives k)."""
        columns = self.prediction_columns(run.predict(values))
        return [[row] for row in self.annotate_predictions(run, values, columns, cfg)]

    # --- monitoring -----------------------------------------------------------------------
    def monitored_features(self, model: Any, data: ProjectData, inputs: Any) -> Features | None:
        """A batch of inputs (what `data.inputs(split)` or `monitored_inputs` gives) as what `monitor` tests for
        drift: named numbers (mean intensity, text length, a column), categories, and the model's own embedding.
        None (the default): the project's inputs are not monitored, and its runs keep no reference."""
        return None

    def reference_split(self, data: ProjectData) -> str:
        """The split whose inputs a run keeps as its monitoring reference: `val` where the data has one (drawn like
        the training data but not fitted on, so what the model learned from its inputs, a vocabulary, an embedding,
        measures it as it will measure new inputs; on the very inputs it fitted, a model knows every word and even the
        test split looks shifted), else `train`."""
        return "val" if "val" in data.splits else "train"

    def monitored_predictions(self, data: ProjectData, outputs: Any) -> Features:
        """The model's typed outputs (`outputs`: of the test split at train time, or `monitored_outputs` of new
        inputs) as what prediction drift is tested on: the predicted class, the predicted value. Empty (the
        default): no prediction drift."""
        return Features()

    def monitored_outputs(self, run: Run, inputs: Any) -> Any:
        """The run's typed outputs for monitored inputs (`monitored_inputs`), as `monitored_predictions` takes them:
        by default the model's predictions; a project whose records are queries answers them as `predict` does
        (a user the model has never seen gets the cold-start answer, not the model's)."""
        return self.outputs(run.fitter.predict(run.model, run.data, inputs, run.device))

    def monitored_inputs(self, run: Run, values: list[Any]) -> Any:
        """Parsed records (`parse_record`) as the inputs `monitored_features` and the run's fitter take: by default
        `stack_inputs`; a project whose records are queries says how they become model inputs."""
        return self.stack_inputs(values)
