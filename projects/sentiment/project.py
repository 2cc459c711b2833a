"""Sentiment analysis as the core sees it: description, metrics, plots, predict inputs and extra commands."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from projects.sentiment import evaluate, predict
from projects.sentiment.evaluate import format_explanation
from projects.sentiment.linear import chosen_C
from projects.sentiment.models import RecurrentClassifier, TransformerClassifier, explain, truncated
from shared.data import ProjectData
from shared.project import Command, Evaluation, PredictItem, Project


class SentimentProject(Project):
    name = "sentiment"
    summary = (
        "Sentiment of English text (negative or positive, with a probability): TF-IDF to a fine-tuned transformer."
    )
    intended_use = (
        "Sorting short English opinions (film and product reviews, comments) into negative or positive, and "
        "teaching the ladder of NLP methods. `predict` explains each decision with the n-grams or tokens that "
        "weighed most."
    )
    limitations = (
        "Trained on film-review sentences from the 2000s: other domains, sarcasm, mixed or neutral opinions "
        "and non-English text are forced into one of two classes. Probabilities are the model's softmax; see "
        "the reliability plot and ECE for how far to trust them. Not for decisions about people."
    )
    free_text_keys = ("text",)

    def score(self, targets: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
        return evaluate.score(targets, outputs)

    def report(self, evaluation: Evaluation, plots_dir: Path, data: ProjectData, model: Any) -> list[Path]:
        return evaluate.report(evaluation, plots_dir, model)

    def model_details(self, model: Any) -> dict[str, Any]:
        if isinstance(model, RecurrentClassifier):
            return {"vocabulary": len(model.words)}
        if isinstance(model, TransformerClassifier):
            return {"pretrained": model.hparams.pretrained, "encoder": type(model.encoder).__name__}
        if hasattr(model, "named_steps"):
            vocabulary = sum(len(part.vocabulary_) for _, part in model.named_steps["features"].transformer_list)
            return {"chosen C": chosen_C(model), "n-gram features": vocabulary}
        return {}

    def commands(self) -> dict[str, Command]:
        from projects.sentiment.processing import processing_command

        return {
            "predict": Command(
                "predict", 'predict text="..." (printed) or input=FILE output=FILE with a finished run', _predict
            ),
            "processing": Command(
                "processing",
                "what each text-processing option does to vocabulary size and accuracy",
                processing_command,
            ),
        }

    # --- predict ---------------------------------------------------------------------------
    def read_inputs(self, cfg: DictConfig) -> list[PredictItem]:
        return predict.read_inputs(cfg.get("text"), cfg.get("input"), str(cfg.text_column), int(cfg.max_chars))

    def stack_inputs(self, values: list[Any]) -> Any:
        return [value.text for value in values]

    def prediction_columns(self, outputs: np.ndarray) -> list[dict[str, Any]]:
        return predict.prediction_columns(outputs)

    def annotate_predictions(
        self, model: Any, values: list[Any], columns: list[dict[str, Any]], cfg: DictConfig
    ) -> list[dict[str, Any]]:
        """The text itself first, an explanation when asked (`explain=N` features), and any truncation warning."""
        texts = [value.text for value in values]
        cut = truncated(model, texts)
        reasons = explain(model, texts, int(cfg.explain)) if cfg.explain else None
        rows = []
        for index, (value, row) in enumerate(zip(values, columns, strict=True)):
            warning = value.warning or ("longer than the model reads: only its start was used" if cut[index] else "")
            rows.append(
                {
                    "text": value.text,
                    **row,
                    **({"explanation": format_explanation(reasons[index])} if reasons else {}),
                    "warning": warning,
                }
            )
        return rows


def _predict(project: Project, cfg: DictConfig) -> int:
    """The core's predict; a single `text=` is also shown on the terminal."""
    from shared.predict import predict_command

    code = predict_command(project, cfg)
    output = Path(str(cfg.output)).expanduser()
    if cfg.get("text") is not None and output.is_file():
        with output.open(encoding="utf-8", newline="") as stream:
            rows = [json.loads(line) for line in stream] if output.suffix == ".jsonl" else list(csv.DictReader(stream))
        for row in rows:
            print("\n".join(f"  {key}: {value}" for key, value in row.items() if value not in ("", None)))
    return code
