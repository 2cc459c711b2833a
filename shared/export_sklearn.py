"""scikit-learn models as ONNX graphs, through skl2onnx: only where its converters cover every step.

A step without a converter (a project's own transformer, a `FunctionTransformer` of a Python function, a wrapper
estimator) is named in a `UsageError` before anything is converted, so the user learns which part of the pipeline
stands in the way rather than reading skl2onnx's traceback.
"""

from __future__ import annotations

from types import BuiltinFunctionType, FunctionType
from typing import Any

import numpy as np
from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer

from shared.errors import UsageError
from shared.fitters import first_line
from shared.onnx_runtime import tabular_inputs

_NO_STEP = ("drop", "passthrough", None)
BATCH_AXIS = "batch"  # the dynamic first axis, named as the torch graphs name it (skl2onnx leaves it unnamed)


def convertible_classes() -> set[type]:
    """The estimator classes skl2onnx has a converter for (it keeps that table only under this private name)."""
    from skl2onnx._supported_operators import sklearn_operator_name_map

    return set(sklearn_operator_name_map)


def unconvertible_step(estimator: Any, where: str = "model") -> tuple[str, Any] | None:
    """The first step of `estimator` (depth first, as `where/step/...`) that skl2onnx cannot convert, or None.

    A subclass of `Pipeline` that only adds methods counts as its steps; a `FunctionTransformer` converts only as
    the identity (skl2onnx cannot translate a Python function)."""
    if isinstance(estimator, Pipeline):
        parts = [(name, step) for name, step in estimator.steps]
    elif isinstance(estimator, FeatureUnion):
        parts = list(estimator.transformer_list)
    elif isinstance(estimator, ColumnTransformer):
        parts = [(name, step) for name, step, _ in estimator.transformers_]  # fitted: the steps that run
    elif isinstance(estimator, FunctionTransformer):
        return None if estimator.func is None else (where, estimator)
    elif isinstance(estimator, CountVectorizer) and python_text_code(estimator):
        return where, estimator
    else:
        return None if type(estimator) in convertible_classes() else (where, estimator)
    if not isinstance(estimator, Pipeline) and type(estimator) not in convertible_classes():
        return where, estimator
    for name, step in parts:
        if isinstance(step, str) or step in _NO_STEP:
            continue
        found = unconvertible_step(step, f"{where}/{name}")
        if found:
            return found
    return None


def python_text_code(vectorizer: CountVectorizer) -> str | None:
    """The Python code a text vectorizer runs on each text (a tokenizer, preprocessor or analyzer of its own), which
    skl2onnx's converter cannot translate; None when it uses scikit-learn's built-in ones only."""
    for role in ("tokenizer", "preprocessor", "analyzer"):
        code = getattr(vectorizer, role)
        if callable(code):
            return f"the Python {role} {_name_of(code)}"
    return None


def describe_step(step: Any) -> str:
    """`FunctionTransformer(flatten_images)`, `TfidfVectorizer with the Python tokenizer TextProcessor`,
    `CrossValidated`: the class, and the code of its own that a step runs."""
    if isinstance(step, FunctionTransformer) and step.func is not None:
        return f"FunctionTransformer({_name_of(step.func)})"
    if isinstance(step, CountVectorizer) and python_text_code(step):
        return f"{type(step).__name__} with {python_text_code(step)}"
    return type(step).__name__


def _name_of(code: Any) -> str:
    """A function's name, or the class of a callable object."""
    named = isinstance(code, type | FunctionType | BuiltinFunctionType | np.ufunc)
    return code.__name__ if named else type(code).__name__


def as_plain(estimator: Any) -> Any:
    """A `Pipeline` subclass as a plain `Pipeline` of the same fitted steps: skl2onnx finds converters by exact
    class, and such a subclass computes what its steps compute."""
    if isinstance(estimator, Pipeline) and type(estimator) is not Pipeline:
        return Pipeline(list(estimator.steps))
    return estimator


def convert_estimator(estimator: Any, inputs: Any) -> Any:
    """The ONNX model (an `onnx.ModelProto`) of a fitted estimator fed inputs like `inputs`; a classifier's
    probabilities come out as a plain tensor (no ZipMap), as `predict_proba` returns them."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    found = unconvertible_step(estimator)
    if found:
        where, step = found
        raise UsageError(
            f"the step {where} ({describe_step(step)}) has no ONNX converter in skl2onnx, so this "
            f"{describe_step(estimator)} cannot be exported.",
            "export a model whose steps are all scikit-learn's own (or a neural model that declares Exports); "
            "serve this one with the torch backend.",
        )
    plain = as_plain(estimator)
    types = [
        (item.name, (FloatTensorType if item.kind == "float" else StringTensorType)([None, item.width]))
        for item in tabular_inputs(inputs)
    ]
    final = plain.steps[-1][1] if isinstance(plain, Pipeline) else plain
    options = {id(final): {"zipmap": False}} if is_classifier(plain) else None
    try:
        converted = convert_sklearn(plain, initial_types=types, options=options)
    except (RuntimeError, NotImplementedError, ValueError, TypeError, KeyError) as error:  # a setting it refuses
        raise UsageError(
            f"skl2onnx cannot convert this {describe_step(estimator)}: {first_line(error)}.",
            "export a model without that setting, or serve this one with the torch backend.",
        ) from error
    for value in (*converted.graph.input, *converted.graph.output):
        dimensions = value.type.tensor_type.shape.dim
        if dimensions and not dimensions[0].HasField("dim_value"):
            dimensions[0].dim_param = BATCH_AXIS
    return converted
