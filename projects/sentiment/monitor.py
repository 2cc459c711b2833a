"""What `monitor` measures of texts: their length in words, the share of their words the model does not know, and,
for the neural models, the model's own embedding of them (its token vectors, mean-pooled)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from projects.sentiment.linear import TfidfClassifier
from projects.sentiment.models import RecurrentClassifier
from projects.sentiment.text_classifier import TextClassifier
from shared.monitor.features import Features

BATCH = 256


def text_features(model: Any, texts: Sequence[str]) -> Features:
    numbers = {"length_words": np.array([len(text.split()) for text in texts], dtype=float)}
    vocabulary = _vocabulary(model)
    if vocabulary is not None:
        tokenize, known = vocabulary
        numbers["unknown_word_share"] = np.array([_unknown_share(tokenize(text), known) for text in texts])
    embedding = _mean_embeddings(model, texts) if isinstance(model, TextClassifier) else None
    return Features(numbers=numbers, embedding=embedding)


def _unknown_share(tokens: list[str], known: Any) -> float:
    return float(np.mean([token not in known for token in tokens])) if tokens else np.nan


def _vocabulary(model: Any) -> tuple[Callable[[str], list[str]], Any] | None:
    """The model's own tokenizer and the words it learned: the linear model's word n-gram vocabulary, or a recurrent
    network's; None for the transformer (its sub-word tokenizer has almost no unknown pieces)."""
    if isinstance(model, TfidfClassifier):
        words = dict(model.named_steps["features"].transformer_list)["word"]
        return words.tokenizer, words.vocabulary_
    if isinstance(model, RecurrentClassifier):
        return model.processor, model.index
    return None


def _mean_embeddings(model: TextClassifier, texts: Sequence[str]) -> np.ndarray:
    """Each text's token vectors (the network's embedding layer), averaged over its tokens."""
    was_training = model.training
    model.eval()
    parts = []
    with torch.inference_mode():
        for start in range(0, len(texts), BATCH):
            batch = model.encode(list(texts[start : start + BATCH]))
            vectors = model.embed(batch).float()
            if isinstance(model, RecurrentClassifier):  # padded to the longest text: its lengths say where
                lengths = batch["lengths"].to(vectors.device)
                mask = (torch.arange(vectors.shape[1], device=vectors.device) < lengths[:, None])[..., None].float()
            else:  # the transformer's tokenizer gives the attention mask
                mask = batch["attention_mask"].to(vectors.device)[..., None].float()
            parts.append(((vectors * mask).sum(1) / mask.sum(1).clamp(min=1)).cpu().numpy())
    model.train(was_training)
    return np.concatenate(parts)
