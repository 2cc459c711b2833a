"""Sentiment data: SST-2, Rotten Tomatoes sentence polarity (10-fold), a user's own table, or a toy corpus.

Every source ends as three splits of English texts (a list of strings) with 0/1 labels
(0 negative, 1 positive). A validation split is always carved from the training texts, never from
the data that is reported, so hyperparameters and checkpoints are chosen without touching it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold
from torch.utils.data import DataLoader

from projects.sentiment.batching import LengthBuckets, collate_texts
from shared import checks
from shared.data import DataFile, ProjectData, fetch_files, holdout_indices
from shared.errors import DataError
from shared.textfiles import check_encoding, read_text, refuse_other_delimiter

CLASS_NAMES = ("negative", "positive")
LABEL_WORDS = {"0": 0, "1": 1, "neg": 0, "negative": 0, "pos": 1, "positive": 1, "false": 0, "true": 1}

_SST2_SOURCE = (
    "https://raw.githubusercontent.com/awake020/pytorch_Bert_sst2/54e22ca58a656750f474ec61ebccaf5ff596de96/SST-2/"
)
SST2_FILES = {
    "train": DataFile(
        "train.tsv",
        sha256=("e981ceb4fe6c9acd1c79851d0d091b9e78103f1f2a399ca83dda27915d41c56c",),
        urls=(_SST2_SOURCE + "train.tsv",),
    ),
    "dev": DataFile(
        "dev.tsv",
        sha256=("84207e6be5873fb18db798cc6faec86871f5a426554650ff64a1c34e87665f6f",),
        urls=(_SST2_SOURCE + "dev.tsv",),
    ),
    "test": DataFile(
        "test.tsv",
        sha256=("fcd46f967b7b8efd8b5398481dadf873886298d092195167af907fd532e81e1c",),
        urls=(_SST2_SOURCE + "test.tsv",),
    ),
}
_RT_SOURCE = (
    "https://raw.githubusercontent.com/dennybritz/cnn-text-classification-tf/"
    "a0d0e9742b3dc42194955e78858f7be93027c75e/data/rt-polaritydata/"
)
RT_FILES = (
    DataFile(
        "rt-polarity.neg",
        sha256=("2d11cfbc790f1cd96d78339f41ce53ced1efa83cd22d37d6788fa3fe3d17e2fd",),
        urls=(_RT_SOURCE + "rt-polarity.neg",),
    ),
    DataFile(
        "rt-polarity.pos",
        sha256=("4134882974a28d0c7b5151256f0e33a6169984ee7372c279e673f1114f475d58",),
        urls=(_RT_SOURCE + "rt-polarity.pos",),
    ),
)


def binary_labels(values: Sequence[Any], source: str) -> np.ndarray:
    """0/1, true/false, or negative/positive (any case) to a 0/1 array; anything else is a `DataError`."""
    words = [str(value).strip().lower() for value in values]
    words = [word[:-2] if word.endswith(".0") else word for word in words]  # pandas reads 1 as 1.0 beside NaN
    unknown = sorted({word for word in words if word not in LABEL_WORDS})
    if unknown:
        raise DataError(
            f"{source}: labels {unknown[:5]} are not binary sentiment labels.",
            "use 0/1, negative/positive, neg/pos or false/true (0 = negative, 1 = positive).",
        )
    return np.array([LABEL_WORDS[word] for word in words], dtype=np.int64)


def read_table(
    path: Path, text_column: str, label_column: str | None, encoding: str | None = None
) -> tuple[list[str], np.ndarray | None]:
    """Texts (and labels) of a CSV, TSV or JSON Lines file, chosen by its suffix. The bytes are decoded by their
    byte-order mark, else as UTF-8, else refused with `data.encoding=` named (`shared.textfiles`)."""
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv", ".tsv"):
        raise DataError(f"{path}: unknown table format '{suffix}'.", "give a .csv, .tsv or .jsonl file.")
    text = read_text(path, encoding, option="data.encoding")
    try:
        if suffix == ".jsonl":
            frame = pd.read_json(io.StringIO(text), lines=True, dtype=False)
        else:
            frame = pd.read_csv(
                io.StringIO(text),
                sep="\t" if suffix == ".tsv" else ",",
                quoting=csv.QUOTE_NONE if suffix == ".tsv" else csv.QUOTE_MINIMAL,
                dtype=str,
                keep_default_na=False,
            )
    except (ValueError, pd.errors.ParserError) as error:
        raise DataError(f"{path} could not be read as {suffix[1:]}: {error}", "check the file's format.") from error
    if suffix != ".jsonl":
        refuse_other_delimiter(path, [str(column) for column in frame.columns])
    for column in (text_column, label_column):
        if column is not None and column not in frame.columns:
            raise DataError(
                f"{path} has no column '{column}' (its columns: {', '.join(map(str, frame.columns))}).",
                "name the columns with data.text_column=... data.label_column=...",
            )
    texts = frame[text_column].fillna("").astype(str).tolist()
    empty = [index + 2 for index, text in enumerate(texts) if not text.strip()]
    if empty:
        raise DataError(f"{path}: empty text in row(s) {empty[:10]}.", "remove or fill those rows.")
    labels = binary_labels(frame[label_column].tolist(), str(path)) if label_column else None
    return texts, labels


class TextData(ProjectData):
    """Binary sentiment texts in train/val/test splits. Subclasses say where the texts come from (`load`)."""

    class_names = CLASS_NAMES
    source = "texts"

    def __init__(
        self,
        mirror_dir: str | None = None,
        cache_dir: str = "~/.cache/ml-portfolio",
        val_size: int | float = 0.1,
        split_seed: int = 0,
        train_limit: int | None = None,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        bucket_by_length: bool = True,
    ) -> None:
        super().__init__(mirror_dir, cache_dir)
        self.val_size = checks.share_or_count(val_size, "data.val_size", 0.1)
        self.split_seed = checks.seed(split_seed, "data.split_seed")
        self.train_limit = None if train_limit is None else checks.whole(train_limit, "data.train_limit", example=2000)
        self.batch_size = checks.whole(batch_size, "data.batch_size", example=64)
        self.eval_batch_size = checks.whole(eval_batch_size, "data.eval_batch_size", example=256)
        self.bucket_by_length = bucket_by_length
        self._texts: dict[str, list[str]] = {}
        self._labels: dict[str, np.ndarray] = {}

    def load(self) -> dict[str, tuple[list[str], np.ndarray]]:
        """The splits the source has: `train` and `test` always, `val` if the source defines one."""
        raise NotImplementedError

    def prepare(self) -> None:
        splits = self.load()
        texts, labels = splits["train"]
        if "val" not in splits:
            kept, held_out = holdout_indices(len(labels), self.val_size, self.split_seed)
            splits["val"] = ([texts[i] for i in held_out], labels[held_out])
            splits["train"] = ([texts[i] for i in kept], labels[kept])
        if self.train_limit and self.train_limit < len(splits["train"][1]):
            # a reproducible random subset, for budget runs on a CPU
            chosen = np.sort(
                np.random.default_rng(self.split_seed).permutation(len(splits["train"][1]))[: self.train_limit]
            )
            splits["train"] = ([splits["train"][0][i] for i in chosen], splits["train"][1][chosen])
        for split in self.splits:
            texts, labels = splits[split]
            if len(texts) != len(labels) or not len(labels):
                raise DataError(
                    f"{self.source}: the {split} split has {len(texts)} texts and {len(labels)} labels.",
                    "check the data files.",
                )
        if len(np.unique(splits["train"][1])) < 2:
            raise DataError(f"{self.source}: the training texts hold only one class.", "give examples of both.")
        self._texts = {split: list(splits[split][0]) for split in self.splits}
        self._labels = {split: np.asarray(splits[split][1], dtype=np.int64) for split in self.splits}

    def inputs(self, split: str) -> list[str]:
        return self._texts[split]

    def add_train_rows(self, path: Path) -> int:
        """`train data.extra=FILE`: labelled texts (a .csv, .tsv or .jsonl with `text` and `label` columns, labels
        0/1 or negative/positive) appended to the train split; validation and test stay as they were."""
        texts, labels = read_table(path, "text", "label")
        assert labels is not None
        self._texts["train"] = [*self._texts["train"], *texts]
        self._labels["train"] = np.concatenate([self._labels["train"], labels])
        return len(texts)

    def targets(self, split: str) -> np.ndarray:
        return self._labels[split]

    def loader(self, inputs: list[str], targets: np.ndarray | None = None, train: bool = False) -> DataLoader:
        rows = [(text,) for text in inputs] if targets is None else list(zip(inputs, targets.tolist(), strict=True))
        if train and self.bucket_by_length:
            sampler = LengthBuckets([len(text) for text in inputs], self.batch_size, seed=self.split_seed)
            return DataLoader(rows, batch_sampler=sampler, collate_fn=collate_texts)
        return DataLoader(
            rows,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            collate_fn=collate_texts,
        )

    def describe(self) -> dict[str, Any]:
        return {"dataset": self.source, **super().describe()}


class Sst2(TextData):
    """SST-2 (Socher et al. 2013, GLUE): 67,349 training phrases; `test` is the 872-sentence dev set
    everyone reports (`test_set=dev`), or the labelled 1,821-sentence test set (`test_set=test`).

    The training file mixes ~6,900 whole sentences with the phrases of their parse trees, while dev and
    test are whole sentences only. So validation holds out `val_size` whole *sentences* (`validation:
    sentences`), and drops from training every phrase found only inside them: a checkpoint is then chosen
    on the kind of text that is reported, and no validation sentence is seen in pieces during training.
    `validation: phrases` holds out random phrases instead (their sentences stay in training).
    """

    source = "SST-2 (GLUE binary Stanford Sentiment Treebank)"

    def __init__(
        self, test_set: str = "dev", val_size: int | float = 800, validation: str = "sentences", **options: Any
    ) -> None:
        if test_set not in ("dev", "test"):
            raise DataError(f"SST-2 has no '{test_set}' set.", "use data.test_set=dev or data.test_set=test.")
        if validation not in ("sentences", "phrases"):
            raise DataError(
                f"unknown SST-2 validation '{validation}'.", "use data.validation=sentences or data.validation=phrases."
            )
        super().__init__(val_size=val_size, **options)
        self.test_set, self.validation = test_set, validation

    def load(self) -> dict[str, tuple[list[str], np.ndarray]]:
        wanted = [SST2_FILES["train"], SST2_FILES[self.test_set]]
        files = fetch_files("sst2", wanted, self.mirror_dir, self.cache_dir)
        splits = {
            "train": read_sst2(files["train.tsv"]),
            "test": read_sst2(files[SST2_FILES[self.test_set].name]),
        }
        if self.validation == "sentences":
            splits.update(hold_out_sentences(*splits["train"], self.val_size, self.split_seed))
        return splits

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "test set": f"SST-2 {self.test_set}.tsv", "validation": self.validation}


def runs_of_words(text: str) -> set[tuple[str, ...]]:
    """Every run of consecutive words of a text: the phrases a parse tree of it could hold."""
    words = tuple(text.split())
    return {words[start:end] for start in range(len(words)) for end in range(start + 1, len(words) + 1)}


def whole_sentences(texts: Sequence[str]) -> list[int]:
    """Indices of the texts that are not a run of words inside another text: in SST-2's training file,
    the whole sentences (the roots of the parse trees), as opposed to their phrases."""
    inside: set[tuple[str, ...]] = set()
    roots = []
    for index in sorted(range(len(texts)), key=lambda i: -len(texts[i].split())):
        if tuple(texts[index].split()) not in inside:
            roots.append(index)
            inside |= runs_of_words(texts[index])
    return sorted(roots)


def hold_out_sentences(
    texts: list[str], labels: np.ndarray, size: int | float, seed: int
) -> dict[str, tuple[list[str], np.ndarray]]:
    """`val`: `size` whole sentences (a count, or a fraction of the sentences); `train`: every text that
    is not one of them and occurs inside some sentence that stays in training."""
    sentences = whole_sentences(texts)
    kept, held_out = holdout_indices(len(sentences), size, seed)
    validation = [sentences[i] for i in held_out]
    spans = set().union(*(runs_of_words(texts[sentences[i]]) for i in kept))
    training = [i for i, text in enumerate(texts) if tuple(text.split()) in spans]
    return {
        "train": ([texts[i] for i in training], labels[training]),
        "val": ([texts[i] for i in validation], labels[validation]),
    }


def read_sst2(path: Path) -> tuple[list[str], np.ndarray]:
    """The mirror's SST-2 TSV: a header, the label first, then the sentence (no quoting)."""
    frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    if frame.shape[1] != 2 or frame.columns[0] != "label":
        raise DataError(f"{path} is not SST-2 as expected (columns {list(frame.columns)}).", "use the mirror's files.")
    return frame.iloc[:, 1].tolist(), binary_labels(frame["label"].tolist(), str(path))


class RtPolarity(TextData):
    """Rotten Tomatoes sentence polarity (Pang & Lee 2005): 5,331 + 5,331 sentences, no official split.

    Its protocol is 10-fold cross-validation: `fold` picks the test fold (stratified, fixed seed), the
    other nine train (with `val_size` of them carved off for validation). A sweep over `data.fold=0..9`
    gives the ten runs that `scripts/benchmark.py` averages.
    """

    source = "Rotten Tomatoes sentence polarity v1.0 (Pang & Lee 2005)"

    def __init__(self, fold: int = 0, folds: int = 10, **options: Any) -> None:
        folds = checks.whole(folds, "data.folds", minimum=2, example=10)
        if not isinstance(fold, int) or isinstance(fold, bool) or not 0 <= fold < folds:
            raise DataError(f"fold {fold} is not one of 0..{folds - 1}.", f"use data.fold=0..{folds - 1}.")
        super().__init__(**options)
        self.fold, self.folds = fold, folds

    def load(self) -> dict[str, tuple[list[str], np.ndarray]]:
        files = fetch_files("rt-polarity", RT_FILES, self.mirror_dir, self.cache_dir)
        negative = read_lines(files["rt-polarity.neg"])
        positive = read_lines(files["rt-polarity.pos"])
        texts = negative + positive
        labels = np.array([0] * len(negative) + [1] * len(positive), dtype=np.int64)
        folds = StratifiedKFold(self.folds, shuffle=True, random_state=self.split_seed)
        train, test = list(folds.split(np.zeros(len(labels)), labels))[self.fold]
        return {"train": ([texts[i] for i in train], labels[train]), "test": ([texts[i] for i in test], labels[test])}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "fold": f"{self.fold} of {self.folds}"}


def read_lines(path: Path) -> list[str]:
    """Non-empty lines of a UTF-8 text file (Latin-1 as a fallback, the Cornell original's encoding)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return [line.strip() for line in text.splitlines() if line.strip()]


class TextTable(TextData):
    """A user's own CSV, TSV or JSON Lines file of texts and binary labels.

    `test_path` gives a separate test file; without it `test_size` of `path` is held out as the test split.
    """

    def __init__(
        self,
        path: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        test_path: str | None = None,
        test_size: int | float = 0.2,
        encoding: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.path, self.test_path = path, test_path
        self.encoding = check_encoding(encoding, "data.encoding")
        self.test_size = checks.share_or_count(test_size, "data.test_size", 0.2, "test")
        self.text_column, self.label_column = text_column, label_column
        self.source = str(path)

    def _read(self, path: str) -> tuple[list[str], np.ndarray]:
        file = Path(path).expanduser()
        if not file.is_file():
            raise DataError(f"data file {file} does not exist.", "point data.path= at a .csv, .tsv or .jsonl file.")
        texts, labels = read_table(file, self.text_column, self.label_column, self.encoding)
        assert labels is not None
        return texts, labels

    def load(self) -> dict[str, tuple[list[str], np.ndarray]]:
        if not self.path:
            raise DataError("data=csv needs a file.", "add data.path=FILE data.text_column=... data.label_column=...")
        texts, labels = self._read(self.path)
        if self.test_path:
            return {"train": (texts, labels), "test": self._read(self.test_path)}
        kept, held_out = holdout_indices(len(labels), self.test_size, self.split_seed + 1)
        return {
            "train": ([texts[i] for i in kept], labels[kept]),
            "test": ([texts[i] for i in held_out], labels[held_out]),
        }


POSITIVE_WORDS = ("good", "great", "wonderful", "superb", "moving", "delightful", "brilliant", "funny")
NEGATIVE_WORDS = ("bad", "awful", "boring", "dull", "terrible", "tedious", "clumsy", "pointless")
FILLER_WORDS = ("the", "film", "films", "a", "movie", "movies", "plot", "is", "was", "acting", "actors", "story")
FILLER_WORDS += ("stories", "it", "and", "this")  # the order matters: the toy corpus draws from it by index


def toy_reviews(count: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Made-up reviews whose label is given by one sentiment word among filler: an obvious rule to learn."""
    generator = np.random.default_rng(seed)
    labels = generator.integers(0, 2, count)
    texts = []
    for label in labels:
        words = list(generator.choice(FILLER_WORDS, generator.integers(3, 9)))
        words.insert(
            int(generator.integers(0, len(words) + 1)), generator.choice(POSITIVE_WORDS if label else NEGATIVE_WORDS)
        )
        texts.append(" ".join(words))
    return texts, labels.astype(np.int64)


class ToyReviews(TextData):
    """A tiny synthetic corpus (one sentiment word among filler) for tests and offline trials."""

    source = "toy reviews (synthetic, for tests)"

    def __init__(self, train_size: int = 400, test_size: int = 100, seed: int = 0, **options: Any) -> None:
        options.setdefault("val_size", 0.2)
        super().__init__(**options)
        self.train_size = checks.whole(train_size, "data.train_size", minimum=10, example=400)
        self.test_size = checks.whole(test_size, "data.test_size", example=100)
        self.seed = checks.seed(seed, "data.seed")

    def load(self) -> dict[str, tuple[list[str], np.ndarray]]:
        return {"train": toy_reviews(self.train_size, self.seed), "test": toy_reviews(self.test_size, self.seed + 1)}
