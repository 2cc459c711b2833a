"""scikit-learn objects on disk in skops' format, which loads without running code (unlike a pickle): a run's
estimator, and a Lightning module's fitted preprocessor."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import skops.io

from shared.errors import RunNotFoundError
from shared.io import atomic_path

# Types skops does not trust by default that hold only data (arrays, tree structures, split settings, a perceptron's
# optimiser state), and `functools.partial`, whose wrapped function is checked on its own. Everything else must
# come from the project.
SAFE_LIBRARY_TYPES = frozenset(
    {
        "functools.partial",
        "numpy.dtype",
        "scipy.sparse._csr.csr_matrix",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.model_selection._split.KFold",
        "sklearn.model_selection._split.ShuffleSplit",
        "sklearn.model_selection._split.StratifiedKFold",
        "sklearn.model_selection._split.StratifiedShuffleSplit",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn.tree._tree.Tree",
        "sklearn.utils._bunch.Bunch",
    }
)


def save_estimator(estimator: Any, path: Path) -> Path:
    """A scikit-learn object in skops' format, which loads without running code (unlike a pickle), atomically."""
    with atomic_path(path) as temporary:
        skops.io.dump(estimator, temporary)
    return path


def load_estimator(path: Path, trusted: tuple[str, ...]) -> Any:
    """A skops file, refused unless every type it names is trusted by skops, safe data, or under `trusted`."""
    if not path.is_file():
        pickled = path.with_suffix(".joblib")
        raise RunNotFoundError(
            f"{pickled} is a pickle, which this version does not load: unpickling a file can run any code in it."
            if pickled.is_file()
            else f"{path} is missing.",
            "retrain the run (its scikit-learn objects are saved with skops).",
        )
    try:
        named = skops.io.get_untrusted_types(file=path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:  # not a skops zip, or a damaged one
        raise RunNotFoundError(
            f"{path} is not a readable skops file ({type(error).__name__}: {error}).", "retrain the run."
        ) from error
    refused = [name for name in named if name not in SAFE_LIBRARY_TYPES and not name.startswith(trusted)]
    if refused:
        raise RunNotFoundError(
            f"{path} holds types this project does not load: {', '.join(refused)}.",
            f"a run folder may only hold classes of {', '.join(trusted)} and scikit-learn's; retrain the run.",
        )
    return skops.io.load(path, trusted=named)
