"""`python -m projects.sentiment processing`: what each text-processing option does to vocabulary and accuracy.

Each variant is the same word-n-gram TF-IDF + logistic regression (characters left out, C fixed) so that
only the processing differs; accuracy is on the validation split (carved from train) and on the test split.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from projects.sentiment.linear import tfidf_logistic_regression
from projects.sentiment.text import TextProcessor
from shared.io import write_text
from shared.project import Project

log = logging.getLogger(__name__)

VARIANTS: dict[str, dict[str, Any]] = {
    "as given (whitespace tokens, case kept)": {"lowercase": False, "strip_accents": False, "tokenizer": "whitespace"},
    "lower case, accents stripped": {"tokenizer": "whitespace"},
    "+ regex tokenizer (n't, 's, punctuation)": {},
    "+ Porter stemmer": {"stemmer": "porter"},
    "+ Snowball stemmer": {"stemmer": "snowball"},
    "+ lemmatization (simplemma)": {"lemmatize": True},
    "+ lemmatization, then Snowball": {"lemmatize": True, "stemmer": "snowball"},
}


def processing_table(
    train: tuple[list[str], Any], evaluations: dict[str, tuple[list[str], Any]], C: float, word_ngrams: list[int]
) -> list[dict[str, Any]]:
    """One row per variant: vocabulary size (distinct unigrams of the training texts) and accuracies."""
    rows = []
    for name, options in VARIANTS.items():
        started = time.perf_counter()
        processor = TextProcessor(**options)
        vocabulary = {token for text in train[0] for token in processor(text)}
        model = tfidf_logistic_regression(word_ngrams=word_ngrams, char_ngrams=None, C=C, processing=options)
        model.fit(*train)
        row: dict[str, Any] = {"processing": name, "vocabulary": len(vocabulary)}
        for split, (texts, labels) in evaluations.items():
            row[f"{split} acc"] = float((model.predict(texts) == labels).mean())
        row["seconds"] = round(time.perf_counter() - started, 1)
        log.info("%s", row)
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        cells = [f"{value:.4f}" if isinstance(value, float) and value < 1.0 else str(value) for value in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def processing_command(project: Project, cfg: DictConfig) -> None:
    data = project.build_data(cfg, cfg.paths)
    data.prepare()
    rows = processing_table(
        (data.inputs("train"), data.targets("train")),
        {split: (data.inputs(split), data.targets(split)) for split in ("val", "test")},
        float(cfg.C),
        list(cfg.word_ngrams),
    )
    source = data.describe().get("dataset", "")
    text = (
        f"# Text processing on {source}\n\nTF-IDF word {tuple(cfg.word_ngrams)}-grams + logistic regression "
        f"(C={cfg.C}, no character n-grams); vocabulary = distinct unigrams of the training texts.\n\n"
        f"{format_table(rows)}\n"
    )
    output = Path(str(cfg.output or Path(cfg.paths.runs_dir) / project.name / "processing.md")).expanduser()
    write_text(output, text)
    print(text)
    print(f"written to {output}")
    log.debug("config: %s", OmegaConf.to_yaml(cfg))
