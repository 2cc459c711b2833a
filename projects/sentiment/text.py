"""Text processing for the classical and recurrent models: normalisation, tokenization, stemming, lemmatization.

Each step is a config option (`model.processing.*`), so its effect on vocabulary size and accuracy can be
measured (`python -m projects.sentiment processing`). Only offline resources are used: NLTK's Porter and
Snowball stemmers (rules, no data download) and simplemma's packaged English lemma tables.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from shared.errors import UsageError

# Words (keeping inner hyphens: well-made), numbers, ! and ?; contractions split the Penn Treebank way, as
# SST-2 is (don't → do n't, it's → it 's), so that negation survives stemming and lemmatization as a token.
_TOKEN = re.compile(r"[^\W_]+(?=n't\b)|n't\b|'(?:s|re|ve|ll|d|m)\b|[^\W_]+(?:-[^\W_]+)*|[!?]", re.UNICODE)
_NEGATIONS = frozenset({"not", "no", "never", "n't", "nothing", "nor", "without"})
STEMMERS = ("none", "porter", "snowball")


class TextProcessor:
    """Text → tokens, configurably. A callable object (not a lambda), so a fitted pipeline can be pickled.

    `lowercase` and `strip_accents` normalise; `tokenizer` is `regex` (words, numbers, n't, ! and ?)
    or `whitespace` (for pre-tokenized corpora such as SST-2); `stemmer` is none, porter or snowball;
    `lemmatize` maps each word to its dictionary form (runs → run, better → good), applied before stemming.
    Results are memoised per word, since a corpus repeats the same few thousand words.
    """

    def __init__(
        self,
        lowercase: bool = True,
        strip_accents: bool = True,
        tokenizer: str = "regex",
        stemmer: str = "none",
        lemmatize: bool = False,
    ) -> None:
        if tokenizer not in ("regex", "whitespace"):
            raise UsageError(f"unknown tokenizer '{tokenizer}'.", "use processing.tokenizer=regex or whitespace.")
        if stemmer not in STEMMERS:
            raise UsageError(f"unknown stemmer '{stemmer}'.", f"use processing.stemmer={' or '.join(STEMMERS)}.")
        self.lowercase, self.strip_accents, self.tokenizer = lowercase, strip_accents, tokenizer
        self.stemmer, self.lemmatize = stemmer, lemmatize
        self._cache: dict[str, str] = {}
        self._stem: Any = None

    def options(self) -> dict[str, Any]:
        return {
            "lowercase": self.lowercase,
            "strip_accents": self.strip_accents,
            "tokenizer": self.tokenizer,
            "stemmer": self.stemmer,
            "lemmatize": self.lemmatize,
        }

    def normalise(self, text: str) -> str:
        """Unicode NFKC (full-width forms, ligatures), then optionally accents off and lower case."""
        text = unicodedata.normalize("NFKC", text)
        if self.strip_accents:
            text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
        return text.lower() if self.lowercase else text

    def tokenize(self, text: str) -> list[str]:
        text = self.normalise(text)
        return text.split() if self.tokenizer == "whitespace" else _TOKEN.findall(text)

    def __call__(self, text: str) -> list[str]:
        return [self._word(token) for token in self.tokenize(text)]

    def _word(self, token: str) -> str:
        if token in _NEGATIONS or (self.stemmer == "none" and not self.lemmatize):
            return token
        if token not in self._cache:
            word = token
            if self.lemmatize:
                import simplemma  # imported on first use: its tables take a moment to load

                word = simplemma.lemmatize(word, lang="en")
                word = word.lower() if self.lowercase else word
            if self.stemmer != "none":
                word = self._stemmer().stem(word)
            self._cache[token] = word
        return self._cache[token]

    def _stemmer(self) -> Any:
        if self._stem is None:
            from nltk.stem import PorterStemmer, SnowballStemmer

            self._stem = PorterStemmer() if self.stemmer == "porter" else SnowballStemmer("english")
        return self._stem

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": {}, "_stem": None}  # rebuilt on demand, not stored in model files
