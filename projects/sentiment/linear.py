"""The fast baseline: TF-IDF word and character n-grams into logistic regression, as one scikit-learn Pipeline.

The regularisation strength C is chosen by cross-validation on the training texts only
(`LogisticRegressionCV`); the reported test set never takes part in choosing it. The pipeline is a
`TfidfClassifier`: a `Pipeline` that also says why it decided (`Explains`), what it chose (`Describes`),
and which n-grams weigh most, so the core and the report ask the model instead of inspecting its steps.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import ShuffleSplit
from sklearn.pipeline import FeatureUnion, Pipeline

from projects.sentiment.text import TextProcessor
from shared.capabilities import Describes, Explains, Explanation


class TfidfClassifier(Pipeline, Explains, Describes):
    """TF-IDF features (a `FeatureUnion` named `features`) into a linear `classifier`: a plain Pipeline that
    can read its own weights. It adds no constructor arguments, so scikit-learn clones and pickles it as a
    Pipeline; its steps must be named `features` and `classifier`."""

    def chosen_C(self) -> float:
        """The C the classifier uses: fixed, or the one cross-validation chose."""
        classifier = self.named_steps["classifier"]
        value = classifier.C_ if isinstance(classifier, LogisticRegressionCV) else classifier.C
        return float(np.ravel(value)[0])

    def ngram_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Every feature's name (`word__great`, `char__ ugh`) and its weight towards positive."""
        names = self.named_steps["features"].get_feature_names_out()
        return np.asarray(names), self.named_steps["classifier"].coef_[0]

    def top_ngrams(self, count: int = 20) -> dict[str, list[tuple[str, float]]]:
        """The n-grams that push hardest towards each class."""
        names, weights = self.ngram_weights()
        order = np.argsort(weights)
        return {
            "negative": [(str(names[i]), float(weights[i])) for i in order[:count]],
            "positive": [(str(names[i]), float(weights[i])) for i in order[::-1][:count]],
        }

    def explain(self, texts: Sequence[str], count: int = 5) -> list[Explanation]:
        """Per text, the n-grams whose TF-IDF value × weight moves its score the most (either way): exact for a
        linear model, since the score is the sum of these contributions and the intercept."""
        names, weights = self.ngram_weights()
        features = self.named_steps["features"].transform(list(texts)).tocsr()
        explanations = []
        for row in range(features.shape[0]):
            start, end = features.indptr[row], features.indptr[row + 1]
            columns, values = features.indices[start:end], features.data[start:end]
            contributions = values * weights[columns]
            order = np.argsort(-np.abs(contributions))[:count]
            explanations.append([(str(names[columns[i]]), float(contributions[i])) for i in order])
        return explanations

    def details(self) -> dict[str, Any]:
        """The chosen C and the number of n-gram features: both depend on the training texts, not the config."""
        vocabulary = sum(len(part.vocabulary_) for _, part in self.named_steps["features"].transformer_list)
        return {"chosen C": self.chosen_C(), "n-gram features": vocabulary}


def tfidf_logistic_regression(
    word_ngrams: Sequence[int] = (1, 2),
    char_ngrams: Sequence[int] | None = (2, 5),
    min_df: int = 2,
    max_df: float = 1.0,
    sublinear_tf: bool = True,
    C: float | None = None,
    Cs: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0),
    cv: int = 3,
    max_iter: int = 1000,
    processing: dict[str, Any] | None = None,
) -> TfidfClassifier:
    """TF-IDF of words (through `TextProcessor`) and of characters within words, then logistic regression.

    `C=None` picks C among `Cs` on the training texts: by `cv`-fold cross-validation, or with `cv=1` on one
    held-out tenth of them (a third of the cost of 3 folds, which matters on SST-2's 67k phrases); a number fixes it.
    `char_ngrams=None` leaves the character features out (used to isolate the effect of word processing).
    """
    parts: list[tuple[str, Any]] = [
        (
            "word",
            TfidfVectorizer(
                tokenizer=TextProcessor(**(processing or {})),
                token_pattern=None,
                lowercase=False,  # the processor decides
                ngram_range=tuple(word_ngrams),
                min_df=min_df,
                max_df=max_df,
                sublinear_tf=sublinear_tf,
                dtype=np.float32,
            ),
        )
    ]
    if char_ngrams:
        parts.append(
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=tuple(char_ngrams),
                    min_df=min_df,
                    max_df=max_df,
                    sublinear_tf=sublinear_tf,
                    dtype=np.float32,
                ),
            )
        )
    if C is None:
        # scikit-learn ≥ 1.9 warns unless told its new attributes and a plain L2 penalty; older ones lack the options
        modern = "use_legacy_attributes" in inspect.signature(LogisticRegressionCV).parameters
        classifier: Any = LogisticRegressionCV(
            Cs=list(Cs),
            cv=ShuffleSplit(1, test_size=0.1, random_state=0) if cv == 1 else cv,
            scoring="accuracy",
            max_iter=max_iter,
            **({"use_legacy_attributes": False, "l1_ratios": (0.0,)} if modern else {}),
        )
    else:
        classifier = LogisticRegression(C=C, max_iter=max_iter)
    return TfidfClassifier([("features", FeatureUnion(parts)), ("classifier", classifier)])
