"""Sentiment models beyond the linear baseline: recurrent networks and a fine-tuned pretrained transformer.

Both are Lightning modules that take raw texts and tokenize them themselves, so the data side stays a
list of strings for every model. What they share (ensembles, adversarial training, the schedule, explanations)
is `TextClassifier`, in `text_classifier.py`; where the starting vectors come from (MiniLM, Word2Vec) is
`embeddings.py`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from projects.sentiment.embeddings import PACKAGED_MINILM, load_pretrained, minilm_word_vectors, train_word2vec
from projects.sentiment.text import TextProcessor
from projects.sentiment.text_classifier import CLASSES, Batch, TextClassifier
from shared.capabilities import Describes, ExportGraph, Exports, FitsOnTrain
from shared.errors import UsageError
from shared.logs import quiet_loggers

log = logging.getLogger(__name__)


class RecurrentClassifier(TextClassifier, FitsOnTrain, Describes):
    """Embeddings → (bi)LSTM or GRU → max- and mean-pooling over the tokens → linear, with its own vocabulary.

    The vocabulary comes from the training texts (`fit_on_train`, which the core calls before training) and is kept
    in the state dict as a byte buffer, so a saved model rebuilds itself from its weights file alone.
    Embeddings start random, from Word2Vec (skip-gram, gensim) trained on the training texts, or from the packaged
    MiniLM read in context (`minilm_word_vectors`).

    `members > 1` is an ensemble in one module: that many networks, each with its own copy of the
    embeddings, its own recurrent layer and head, and its own loss, whose logits are averaged. One embedding
    table of width members × embedding_dim holds the copies, so gradient×input explains the whole ensemble.
    """

    def __init__(
        self,
        cell: str = "lstm",
        embedding_dim: int = 300,
        hidden: int = 256,
        layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.5,
        embeddings: str = "random",
        members: int = 1,
        word_dropout: float = 0.0,
        word2vec_epochs: int = 10,
        minilm_layer: int = 3,
        minilm_contexts: int = 2,
        freeze_embeddings: bool = False,
        min_count: int = 1,
        max_vocabulary: int = 50_000,
        max_tokens: int = 100,
        processing: dict[str, Any] | None = None,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        warmup: float = 0.05,
        adversarial: float = 0.0,
    ) -> None:
        super().__init__(lr, weight_decay, warmup, adversarial)
        if cell not in ("lstm", "gru"):
            raise UsageError(f"unknown recurrent cell '{cell}'.", "use model.cell=lstm or model.cell=gru.")
        if embeddings not in ("random", "word2vec", "minilm"):
            raise UsageError(f"unknown embeddings '{embeddings}'.", "use model.embeddings=random, word2vec or minilm.")
        if members < 1:
            raise UsageError(f"model.members={members}: an ensemble needs at least one member.", "use members >= 1.")
        self.save_hyperparameters()
        self.processor = TextProcessor(**(processing or {}))
        self.words: list[str] = []
        self.index: dict[str, int] = {}
        self.register_buffer("vocabulary", torch.zeros(0, dtype=torch.uint8))
        recurrent = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnns = nn.ModuleList(
            recurrent(
                embedding_dim,
                hidden,
                num_layers=layers,
                bidirectional=bidirectional,
                batch_first=True,
                dropout=dropout if layers > 1 else 0.0,
            )
            for _ in range(members)
        )
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleList(nn.Linear(2 * hidden * (2 if bidirectional else 1), CLASSES) for _ in range(members))
        self.embedding: nn.Embedding | None = None

    # --- vocabulary -------------------------------------------------------------------------
    def fit_vocabulary(self, texts: Sequence[str]) -> None:
        """Words of the training texts (seen `min_count` times, most frequent first); embeddings to match."""
        tokenized = [self.processor(text) for text in texts]
        counts = Counter(token for tokens in tokenized for token in tokens)
        kept = [w for w, n in counts.most_common(self.hparams.max_vocabulary) if n >= self.hparams.min_count]
        self._set_vocabulary(["<pad>", "<unk>", *kept])
        if self.hparams.embeddings == "word2vec":
            self._word2vec(tokenized)
        elif self.hparams.embeddings == "minilm":
            self._minilm(tokenized)
        log.info("vocabulary: %d words (%s embeddings)", len(self.words), self.hparams.embeddings)

    def fit_on_train(self, texts: Sequence[str], labels: Any = None) -> None:
        """The core's hook before training (`FitsOnTrain`): the vocabulary of the training texts."""
        self.fit_vocabulary(texts)

    def details(self) -> dict[str, Any]:
        """The vocabulary size, for `metrics.json` and the model card: it depends on the data, not the config."""
        return {"vocabulary": len(self.words)}

    def _set_vocabulary(self, words: list[str]) -> None:
        self.words = words
        self.index = {word: i for i, word in enumerate(words)}
        self.vocabulary = torch.tensor(list("\n".join(words).encode("utf-8")), dtype=torch.uint8)
        self.embedding = nn.Embedding(len(words), self.hparams.members * self.hparams.embedding_dim, padding_idx=0)
        self.embedding.weight.requires_grad_(not self.hparams.freeze_embeddings)

    def _word2vec(self, tokenized: list[list[str]]) -> None:
        """Each member's slice of the embedding table from a Word2Vec of its own seed: a more diverse ensemble."""
        width, seed = self.hparams.embedding_dim, torch.initial_seed()
        log.info("Word2Vec (skip-gram, %d epochs) on %d training texts", self.hparams.word2vec_epochs, len(tokenized))
        with quiet_loggers("gensim"):  # a line per epoch and a dict per stage otherwise
            tables = [
                train_word2vec(tokenized, width, self.hparams.word2vec_epochs, seed + member)
                for member in range(self.hparams.members)
            ]
        assert self.embedding is not None
        with torch.no_grad():
            for member, vectors in enumerate(tables):
                columns = slice(member * width, (member + 1) * width)
                for word, row in self.index.items():
                    if word in vectors:
                        self.embedding.weight[row, columns] = torch.from_numpy(vectors[word].copy())

    def _minilm(self, tokenized: list[list[str]]) -> None:
        """Each word's vector from the packaged all-MiniLM-L6-v2, read in context: the encoder's states for
        the word, averaged over its occurrences in the training texts (a static embedding distilled from a
        contextual model, as Bommasani et al. 2020 do). Pretrained, offline, and no hub."""
        vectors, found = minilm_word_vectors(
            tokenized, self.words, self.hparams.minilm_layer, self.hparams.minilm_contexts, self.hparams.embedding_dim
        )
        assert self.embedding is not None
        with torch.no_grad():
            rows = torch.from_numpy(np.flatnonzero(found))
            self.embedding.weight[rows] = torch.from_numpy(vectors[found]).repeat(1, self.hparams.members)
        log.info("MiniLM vectors for %d of %d words (the rest start random)", int(found.sum()), len(self.words))

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """Rebuild the vocabulary (and so the embedding's size) from the saved bytes before loading weights."""
        saved = state_dict.get("vocabulary")
        if saved is not None and len(saved):
            self._set_vocabulary(bytes(saved.tolist()).decode("utf-8").split("\n"))
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # --- the network ------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> Batch:
        if self.embedding is None:
            raise RuntimeError("fit_vocabulary must run before the model sees text")
        tokens = [self.processor(text)[: self.hparams.max_tokens] or ["<pad>"] for text in texts]
        lengths = [len(row) for row in tokens]
        ids = torch.zeros(len(tokens), max(lengths), dtype=torch.long)
        for row, words in enumerate(tokens):
            ids[row, : len(words)] = torch.tensor([self.index.get(word, 1) for word in words])
        return {"ids": ids.to(self.device), "lengths": torch.tensor(lengths), "tokens": tokens}

    def embed(self, batch: Batch) -> torch.Tensor:
        assert self.embedding is not None
        ids = batch["ids"]
        if self.training and self.hparams.word_dropout > 0:  # words read as unknown: less memorising of rare words
            dropped = (torch.rand(ids.shape, device=ids.device) < self.hparams.word_dropout) & (ids > 0)
            ids = ids.masked_fill(dropped, 1)
        return self.embedding(ids)

    def member_logits(self, embeddings: torch.Tensor, batch: Batch) -> torch.Tensor:
        lengths, width = batch["lengths"], embeddings.shape[1]
        mask = (torch.arange(width) < lengths[:, None]).to(embeddings.device)[..., None]
        logits = []
        for rnn, head, vectors in zip(self.rnns, self.heads, embeddings.chunk(len(self.rnns), dim=-1), strict=True):
            packed = pack_padded_sequence(self.dropout(vectors), lengths, batch_first=True, enforce_sorted=False)
            states, _ = pad_packed_sequence(rnn(packed)[0], batch_first=True, total_length=width)
            maximum = states.masked_fill(~mask, float("-inf")).max(dim=1).values
            mean = (states * mask).sum(dim=1) / mask.sum(dim=1)
            logits.append(head(self.dropout(torch.cat([maximum, mean], dim=1))))
        return torch.stack(logits)

    def classify(self, embeddings: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.member_logits(embeddings, batch).mean(dim=0)

    def tokens(self, batch: Batch) -> list[list[str]]:
        return batch["tokens"]

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        return [len(self.processor(text)) > self.hparams.max_tokens for text in texts]


class TokenProbabilities(nn.Module):
    """A transformer classifier's probabilities from token ids and their attention mask: the encoder and the head,
    without the tokenizer (which stays in Python). Token type ids are left to the encoder's default, all zeros,
    which is what the tokenizer gives a single text."""

    def __init__(self, model: TransformerClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        return F.softmax(self.model.classify(self.model.embed(batch), batch).float(), dim=1)


class TransformerClassifier(TextClassifier, Describes, Exports):
    """A pretrained Hugging Face encoder, fine-tuned whole with a linear head on its pooled output.

    Texts are tokenized per batch and padded to the longest text of the batch (dynamic padding), cut
    at `max_length` tokens. `pooling=mean` averages the token vectors (what all-MiniLM-L6-v2 was trained
    with); `cls` takes the first token's (BERT's convention). Exported as `TokenProbabilities`, the batch and
    the token axis dynamic.
    """

    EXPORTED = ("input_ids", "attention_mask")

    def __init__(
        self,
        pretrained: str = PACKAGED_MINILM,
        max_length: int = 128,
        pooling: str = "mean",
        dropout: float = 0.1,
        lr: float = 5e-5,
        weight_decay: float = 0.01,
        warmup: float = 0.1,
        adversarial: float = 0.0,
    ) -> None:
        super().__init__(lr, weight_decay, warmup, adversarial)
        if pooling not in ("mean", "cls"):
            raise UsageError(f"unknown pooling '{pooling}'.", "use model.pooling=mean or model.pooling=cls.")
        self.save_hyperparameters()
        self.tokenizer, self.encoder = load_pretrained(pretrained)
        self.encoder.train()  # from_pretrained leaves it in eval mode, and Lightning keeps submodules' modes
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.encoder.config.hidden_size, CLASSES))

    def encode(self, texts: Sequence[str]) -> Batch:
        encoded = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.hparams.max_length, return_tensors="pt"
        )
        return {key: value.to(self.device) for key, value in encoded.items()}

    def embed(self, batch: Batch) -> torch.Tensor:
        return self.encoder.get_input_embeddings()(batch["input_ids"])

    def classify(self, embeddings: torch.Tensor, batch: Batch) -> torch.Tensor:
        inputs = {key: value for key, value in batch.items() if key not in ("input_ids",)}
        states = self.encoder(inputs_embeds=embeddings, **inputs).last_hidden_state
        if self.hparams.pooling == "cls":
            pooled = states[:, 0]
        else:
            mask = batch["attention_mask"][..., None].to(states.dtype)
            pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.head(pooled)

    def export_graph(self, batch: Sequence[Any]) -> ExportGraph:
        return ExportGraph(TokenProbabilities(self), self.EXPORTED, {name: {1: "tokens"} for name in self.EXPORTED})

    def export_inputs(self, batch: Sequence[Any]) -> dict[str, torch.Tensor]:
        """The batch's texts tokenized as in prediction: padded to the longest, cut at `max_length`."""
        encoded = self.encode(batch[0])
        return {name: encoded[name].cpu() for name in self.EXPORTED}

    def tokens(self, batch: Batch) -> list[list[str]]:
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        return [
            self.tokenizer.convert_ids_to_tokens(ids[:length])
            for ids, length in zip(batch["input_ids"].tolist(), lengths, strict=True)
        ]

    def special_tokens(self) -> set[str]:
        return set(self.tokenizer.all_special_tokens)

    def details(self) -> dict[str, Any]:
        """Which pretrained weights were fine-tuned, and the encoder class they loaded as."""
        return {"pretrained": self.hparams.pretrained, "encoder": type(self.encoder).__name__}

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        lengths = [len(ids) for ids in self.tokenizer(list(texts), truncation=False)["input_ids"]]
        return [length > self.hparams.max_length for length in lengths]
