"""The drift tests, from scipy and scikit-learn: each feature of a new batch against the training reference.

* numbers: two-sample Kolmogorov–Smirnov (`scipy.stats.ks_2samp`) and the population stability index over ten
  quantile bins of the reference;
* categories: chi-square on the 2×K table of counts (`scipy.stats.chi2_contingency`) and the PSI over categories;
* an embedding: a domain classifier. A logistic regression on the PCA-reduced embedding and its squares learns to
  tell new inputs from the reference; its out-of-fold AUC (`cross_val_predict`, `roc_auc_score`) is the effect, and
  the Mann–Whitney U test of the out-of-fold scores (which is the AUC's own test) the p-value. Chosen over an MMD
  permutation test because it costs one 5-fold fit instead of hundreds of kernel sums over ~5,500² pairs, and its
  AUC reads as a size: 0.5 is indistinguishable, 1.0 fully separable.

A feature is flagged when its Bonferroni-adjusted p-value is below `alpha` *and* the shift is big enough to matter
(PSI ≥ `min_psi`, AUC ≥ `min_auc`): with thousands of reference rows a test finds differences too small to act on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats
from scipy.special import rel_entr
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

PSI_BINS = 10
PSI_FLOOR = 1e-4  # a bin empty on one side counts as this share, so the PSI stays finite
MIN_VALUES = 5  # fewer measured values on either side: the feature is not tested


@dataclass
class FeatureDrift:
    """One feature's test: which test, its statistic, raw and Bonferroni-adjusted p-values, PSI, and the verdict."""

    feature: str
    kind: str  # number, category, embedding
    source: str  # input or prediction
    test: str
    statistic: float | None
    p_value: float | None
    psi: float | None = None
    auc: float | None = None
    reference_size: int = 0
    new_size: int = 0
    adjusted_p_value: float | None = None
    drifted: bool = False
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Thresholds:
    """When a feature counts as drifted: significant after Bonferroni, and a shift big enough to matter."""

    alpha: float = 0.05
    min_psi: float = 0.1
    min_auc: float = 0.6


def psi(reference_shares: np.ndarray, new_shares: np.ndarray) -> float:
    """Population stability index: the symmetrised Kullback–Leibler divergence of two binned distributions."""
    expected = np.clip(reference_shares, PSI_FLOOR, None)
    actual = np.clip(new_shares, PSI_FLOOR, None)
    expected, actual = expected / expected.sum(), actual / actual.sum()
    return float(np.sum(rel_entr(actual, expected) + rel_entr(expected, actual)))


def quantile_edges(reference: np.ndarray, bins: int = PSI_BINS) -> np.ndarray:
    """Bin edges at the reference's quantiles (ties merged), open at both ends so every new value has a bin."""
    inner = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.concatenate([[-np.inf], inner, [np.inf]])


def numeric_drift(name: str, reference: np.ndarray, new: np.ndarray, source: str = "input") -> FeatureDrift:
    """KS test and PSI of one numeric feature; NaN (not measured) values are left out of both."""
    reference, new = reference[np.isfinite(reference)], new[np.isfinite(new)]
    result = FeatureDrift(name, "number", source, "ks", None, None, reference_size=len(reference), new_size=len(new))
    if min(len(reference), len(new)) < MIN_VALUES:
        result.note = f"not tested: fewer than {MIN_VALUES} measured values"
        return result
    test = stats.ks_2samp(reference, new)
    edges = quantile_edges(reference)
    shares = [np.histogram(values, edges)[0] / len(values) for values in (reference, new)]
    result.statistic, result.p_value, result.psi = float(test.statistic), float(test.pvalue), psi(*shares)
    return result


def categorical_drift(name: str, reference: np.ndarray, new: np.ndarray, source: str = "input") -> FeatureDrift:
    """Chi-square test of homogeneity and PSI of one categorical feature."""
    result = FeatureDrift(
        name, "category", source, "chi2", None, None, reference_size=len(reference), new_size=len(new)
    )
    if min(len(reference), len(new)) < MIN_VALUES:
        result.note = f"not tested: fewer than {MIN_VALUES} values"
        return result
    categories = np.union1d(reference, new)
    table = np.array([[np.sum(values == category) for category in categories] for values in (reference, new)])
    result.psi = psi(table[0] / table[0].sum(), table[1] / table[1].sum())
    if len(categories) < 2:
        result.statistic, result.p_value, result.note = 0.0, 1.0, "a single category on both sides"
        return result
    test = stats.chi2_contingency(table)
    result.statistic, result.p_value = float(test.statistic), float(test.pvalue)
    return result


def embedding_drift(name: str, reference: np.ndarray, new: np.ndarray, seed: int = 0) -> FeatureDrift:
    """Domain classifier on the (PCA-reduced) embeddings: out-of-fold AUC, and its Mann–Whitney p-value."""
    result = FeatureDrift(
        name, "embedding", "input", "domain_classifier", None, None, reference_size=len(reference), new_size=len(new)
    )
    if min(len(reference), len(new)) < 2 * MIN_VALUES:
        result.note = f"not tested: fewer than {2 * MIN_VALUES} inputs"
        return result
    inputs = np.vstack([reference, new])
    labels = np.concatenate([np.zeros(len(reference), int), np.ones(len(new), int)])
    classifier = make_pipeline(
        StandardScaler(), PolynomialFeatures(2), StandardScaler(), LogisticRegression(C=0.1, max_iter=1000)
    )
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    scores = cross_val_predict(classifier, inputs, labels, cv=folds, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(labels, scores))
    test = stats.mannwhitneyu(scores[labels == 1], scores[labels == 0], alternative="greater")
    result.statistic, result.auc, result.p_value = auc, auc, float(test.pvalue)
    return result


def judge(results: list[FeatureDrift], thresholds: Thresholds) -> bool:
    """Bonferroni across every tested feature, then each feature's flag; True when any feature drifted."""
    tested = [result for result in results if result.p_value is not None]
    for result in tested:
        assert result.p_value is not None
        result.adjusted_p_value = min(1.0, result.p_value * len(tested))
        large = (
            result.auc is not None and result.auc >= thresholds.min_auc
            if result.kind == "embedding"
            else result.psi is not None and result.psi >= thresholds.min_psi
        )
        result.drifted = bool(result.adjusted_p_value < thresholds.alpha and large)
    return any(result.drifted for result in results)
