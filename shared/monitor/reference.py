"""The reference a run keeps of its training data, for `monitor` to test new inputs against.

At train time, `write_reference` measures a random sample (up to `REFERENCE_ROWS`) of the inputs of the split the
project names (`Project.reference_split`: the validation split where there is one) with `monitored_features`, reduces
any embedding by PCA fitted on that sample, and measures the test split's predictions with `monitored_predictions`
(the reference for prediction drift). Everything lands in one compressed `reference.npz` in the run (plain arrays: it
loads without pickle), written atomically.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.decomposition import PCA

from shared.errors import RunNotFoundError
from shared.io import atomic_path
from shared.monitor.features import Features, take

if TYPE_CHECKING:
    from shared.data import ProjectData
    from shared.project import Project

log = logging.getLogger(__name__)

REFERENCE_FILE = "reference.npz"
REFERENCE_ROWS = 5000  # a sample this size pins a distribution down to ~0.02 in KS distance
EMBEDDING_DIMENSIONS = 8  # principal components of an embedding kept (and tested)


@dataclass
class Reference:
    """The training inputs measured (an embedding as its principal components), the test split's predictions
    measured, the PCA that reduces new embeddings the same way, and where the sample came from."""

    inputs: Features
    predictions: Features
    source: str
    pca_mean: np.ndarray | None = None
    pca_components: np.ndarray | None = None

    def reduce(self, embedding: np.ndarray) -> np.ndarray:
        """A new embedding in the reference's principal components."""
        if self.pca_mean is None or self.pca_components is None:
            raise ValueError("this reference has no embedding")
        if embedding.shape[1] != self.pca_mean.shape[0]:
            raise RunNotFoundError(
                f"the model's embedding has {embedding.shape[1]} dimensions, the reference's {self.pca_mean.shape[0]}.",
                "the reference belongs to another model: retrain the run, or pass its own reference=.",
            )
        return (embedding - self.pca_mean) @ self.pca_components.T


def build_reference(
    project: Project,
    model: Any,
    data: ProjectData,
    inputs: Any,
    outputs: Any | None,
    source: str,
    seed: int = 0,
) -> Reference | None:
    """Measure a sample of `inputs` (and the typed `outputs` for prediction drift); None when the project does not
    say how its inputs are monitored."""
    count = len(inputs)
    chosen = np.sort(np.random.default_rng(seed).permutation(count)[:REFERENCE_ROWS])
    measured = project.monitored_features(model, data, take(inputs, chosen))
    if measured is None:
        return None
    predictions = project.monitored_predictions(data, outputs) if outputs is not None else Features()
    reference = Reference(measured, predictions, f"{source}: {len(chosen)} of {count} inputs")
    if measured.embedding is not None and len(measured.embedding) > 1:
        embedding = measured.embedding
        pca = PCA(n_components=min(EMBEDDING_DIMENSIONS, embedding.shape[1], len(embedding) - 1), random_state=seed)
        reduced = pca.fit_transform(embedding)
        reference.pca_mean, reference.pca_components = pca.mean_, pca.components_
        reference.inputs = Features(measured.numbers, measured.categories, reduced)
    return reference


def save_reference(reference: Reference, path: Path) -> Path:
    """`reference.npz`: every array under a prefixed name, written atomically."""
    arrays: dict[str, np.ndarray] = {"source": np.array(reference.source)}
    for prefix, features in (("", reference.inputs), ("prediction_", reference.predictions)):
        arrays |= {f"{prefix}number:{name}": values for name, values in features.numbers.items()}
        arrays |= {f"{prefix}category:{name}": values for name, values in features.categories.items()}
        if features.embedding is not None:
            arrays[f"{prefix}embedding"] = features.embedding
    if reference.pca_mean is not None and reference.pca_components is not None:
        arrays |= {"pca_mean": reference.pca_mean, "pca_components": reference.pca_components}
    with atomic_path(path) as temporary:
        np.savez_compressed(temporary, **arrays)  # type: ignore[arg-type]
    return path


def load_reference(path: Path) -> Reference:
    """A saved reference; a damaged file, or one holding objects rather than arrays, is refused with the reason."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise RunNotFoundError(
            f"{path} is not a readable monitoring reference ({error}).",
            "retrain the run, or pass reference=<inputs in the predict format that stand for its training data>.",
        ) from error

    def features(prefix: str) -> Features:
        numbers = {name.split(":", 1)[1]: a for name, a in arrays.items() if name.startswith(f"{prefix}number:")}
        categories = {name.split(":", 1)[1]: a for name, a in arrays.items() if name.startswith(f"{prefix}category:")}
        return Features(numbers, categories, arrays.get(f"{prefix}embedding"))

    return Reference(
        features(""),
        features("prediction_"),
        str(arrays.get("source", np.array("unknown"))),
        arrays.get("pca_mean"),
        arrays.get("pca_components"),
    )


def write_reference(
    project: Project, model: Any, data: ProjectData, test_outputs: Any | None, run_dir: Path, seed: int
) -> Path | None:
    """Train time: the run's `reference.npz` from the split the project names and the test predictions (None: the
    project does not monitor its inputs)."""
    split = project.reference_split(data)
    reference = build_reference(project, model, data, data.inputs(split), test_outputs, f"{split} split", seed)
    if reference is None:
        return None
    path = save_reference(reference, run_dir / REFERENCE_FILE)
    log.info("monitoring reference: %s -> %s", reference.source, path)
    return path
