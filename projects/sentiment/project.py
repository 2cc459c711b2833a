"""Sentiment analysis as the core sees it: description, declared metrics, plots, predict records, and the
`processing` command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from projects.sentiment import evaluate, predict
from projects.sentiment.data import CLASS_NAMES
from projects.sentiment.monitor import text_features
from projects.sentiment.predict import InputText
from projects.sentiment.text_classifier import TextClassifier
from shared import checks
from shared.api_schema import RecordSchema
from shared.classification import CLASSIFICATION_GOALS
from shared.data import ProjectData
from shared.metrics import MAX, Metrics
from shared.monitor.features import Features, predicted_class_features
from shared.predict import parse_item
from shared.project import Command, Evaluation, PredictItem, Project
from shared.runs import Run


class SentimentProject(Project):
    name = "sentiment"
    summary = (
        "Sentiment of English text (negative or positive, with a probability): TF-IDF to a fine-tuned transformer."
    )
    intended_use = (
        "Sorting short English opinions (film and product reviews, comments) into negative or positive, and "
        "teaching the ladder of NLP methods. `predict explain=N` explains each decision with the n-grams or "
        "tokens that weighed most."
    )
    limitations = (
        "Trained on film-review sentences from the 2000s: other domains, sarcasm, mixed or neutral opinions "
        "and non-English text are forced into one of two classes. Probabilities are the model's softmax; see "
        "the reliability plot and ECE for how far to trust them. Not for decisions about people."
    )
    metrics = Metrics("acc", {**CLASSIFICATION_GOALS, "f1": MAX, "roc_auc": MAX})
    free_text_keys = ("text",)
    predict_usage = f'text="a gripping film"  (or input=<{predict.TEXT_FILES}> output=preds.csv)'

    def score(self, data: ProjectData, split: str, outputs: np.ndarray) -> dict[str, float]:
        return evaluate.score(data.targets(split), outputs)

    def report(self, evaluation: Evaluation, plots_dir: Path, data: ProjectData, model: Any) -> list[Path]:
        return evaluate.report(evaluation, plots_dir, model)

    def commands(self) -> dict[str, Command]:
        from projects.sentiment.processing import processing_command

        return {
            "processing": Command(
                "processing",
                "what each text-processing option does to vocabulary size and accuracy",
                processing_command,
            ),
        }

    # --- predict ---------------------------------------------------------------------------
    def command_line_record(self, cfg: DictConfig) -> Any | None:
        """`text=...`: one text, which the core also prints."""
        return cfg.get("text")

    def request_schema(self, run: Run) -> RecordSchema:
        return predict.TEXT_SCHEMA

    def read_file(self, path: Path, run: Run, cfg: DictConfig) -> list[PredictItem]:
        column = str(cfg.get("text_column") or "text")
        _max_chars(cfg)  # a bad setting stops the command before the file is read, not in every row
        return predict.read_file(
            path, column, lambda name, payload: parse_item(self, name, payload, run, cfg), cfg.get("encoding")
        )

    def parse_record(self, payload: Any, run: Run, cfg: DictConfig) -> InputText:
        return predict.parse_text(payload, _max_chars(cfg))

    def stack_inputs(self, values: list[Any]) -> list[str]:
        return [value.text for value in values]

    def prediction_columns(self, outputs: np.ndarray) -> list[dict[str, Any]]:
        return predict.prediction_columns(outputs)

    def monitored_features(self, model: Any, data: ProjectData, inputs: list[str]) -> Features:
        return text_features(model, inputs)

    def monitored_predictions(self, data: ProjectData, outputs: np.ndarray) -> Features:
        return predicted_class_features(outputs, CLASS_NAMES)

    def annotate_predictions(
        self, run: Run, values: list[Any], columns: list[dict[str, Any]], cfg: DictConfig
    ) -> list[dict[str, Any]]:
        """The text itself first, and a warning when it was cut: at `max_chars`, or by a network that reads
        only the first tokens (the linear model reads every word)."""
        texts = self.stack_inputs(values)
        cut = run.model.truncated(texts) if isinstance(run.model, TextClassifier) else [False] * len(texts)
        return predict.annotate(values, columns, cut)


def _max_chars(cfg: DictConfig) -> int:
    """`max_chars` as a positive count (null: the default): 0 or -1 would silently cut every text, or none."""
    value = cfg.get("max_chars")
    return predict.MAX_CHARS if value is None else checks.whole(value, "max_chars", example=predict.MAX_CHARS)
