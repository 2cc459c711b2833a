"""`predict`, three ways, through the core's predict flow (`shared.predict`), with a finished run's model:

    predict user=196 k=10           top-k titles for a user, never what they have seen
    predict item=50 similar=10      the movies most like a movie (models that `ComparesItems`)
    predict input=pairs.csv output=scores.csv    a rating (or score) per (user, item) row

Every record (the command line's, a row of the file, a JSON body) is parsed into a small typed query, so
the HTTP API asks the same questions. An unknown user is a cold start: the popularity fallback, with a
warning; an unknown item id is that record's error. Ids are the dataset's own (MovieLens' user and movie
ids), not internal indices.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from pydantic import BaseModel, Field

from projects.recommender.capabilities import ComparesItems
from projects.recommender.data import RANKING, Interactions
from projects.recommender.metrics import top_k
from projects.recommender.sources import ITEM_COLUMNS, USER_COLUMNS
from shared.api_schema import RecordSchema
from shared.errors import DataError, RecordError, UsageError
from shared.project import PredictItem
from shared.runs import Run
from shared.textfiles import read_rows

log = logging.getLogger(__name__)

COLD_PRIOR = 10.0  # ratings' worth of shrinkage of an item's mean rating towards the global mean (cold start)


@dataclass(frozen=True)
class TopItems:
    """The `k` best unseen items for a user; `user` is None for a user the data does not know (cold start)."""

    raw_user: str
    user: int | None
    k: int


@dataclass(frozen=True)
class SimilarItems:
    """The `k` items most like `item`."""

    raw_item: str
    item: int
    k: int


@dataclass(frozen=True)
class PairScore:
    """The rating (rating protocol) or score (ranking) of one (user, item); `user` None: cold start."""

    raw_user: str
    raw_item: str
    user: int | None
    item: int


Query = TopItems | SimilarItems | PairScore


class QueryRecord(BaseModel):
    """`{user, k}`: a user's top-k unseen items; `{item, similar}`: the items most like one; `{user, item}`: the
    pair's rating (rating protocol) or score (ranking). Ids are the dataset's own."""

    user: int | str | None = Field(None, description="a user id (unknown: the popular items, as a cold start)")
    item: int | str | None = Field(None, description="an item id")
    k: int | None = Field(None, ge=1, description="how many items for the user (default 10)")
    similar: int | None = Field(None, ge=1, description="how many similar items (default 10)")


def query_pairs(queries: list[Query]) -> np.ndarray:
    """Queries as (user, item) index pairs for monitoring: -1 for a user the data does not know (or a similar-items
    query, which has none) and for a top-k query's item."""
    pairs = np.full((len(queries), 2), -1, dtype=np.int64)
    for row, query in enumerate(queries):
        if isinstance(query, TopItems | PairScore) and query.user is not None:
            pairs[row, 0] = query.user
        if isinstance(query, SimilarItems | PairScore):
            pairs[row, 1] = query.item
    return pairs


@dataclass(frozen=True)
class PairScores:
    """The scores `predict` answers for (user, item) pairs: the model's for a known user, the cold-start score for an
    unknown one. What the recommender's prediction drift is measured on."""

    values: np.ndarray


def pair_scores(run: Run, data: Interactions, pairs: np.ndarray) -> PairScores:
    """Each monitored pair's answer (`query_pairs`; a top-k query has no item, so no score, and is left out)."""
    pairs = np.asarray(pairs)
    pairs = pairs[pairs[:, 1] >= 0]
    known = pairs[:, 0] >= 0
    scores = np.zeros(len(pairs), np.float64)
    scores[~known] = [_cold_score(data, int(item)) for item in pairs[~known, 1]]
    if known.any():
        if data.protocol == RANKING:  # a ranking model scores a user's whole catalogue at once
            users, rows = np.unique(pairs[known, 0], return_inverse=True)
            scores[known] = _predict(run, data, users)[rows, pairs[known, 1]]
        else:
            scores[known] = _predict(run, data, pairs[known])
    return PairScores(scores)


def query_schema(data: Interactions) -> RecordSchema:
    """The HTTP record of a query, with an example asking for a known user's top 5."""
    return RecordSchema(QueryRecord, example={"user": _plain_id(data.user_ids[0]), "k": 5})


def _plain_id(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def command_line_record(cfg: DictConfig) -> dict[str, Any] | None:
    """`user=ID [k=10]` or `item=ID [similar=10]` as a record; None when neither is given."""
    user, item = cfg.get("user"), cfg.get("item")
    if user is not None and item is not None:
        raise UsageError(
            "predict got both user= and item=.",
            "ask for a user's top items (user=ID k=10) or for similar items (item=ID similar=10); score "
            "(user, item) pairs with input=pairs.csv.",
        )
    if user is not None:
        return {"user": user, "k": cfg.get("k")}
    if item is not None:
        return {"item": item, "similar": cfg.get("similar")}
    return None


def read_pairs(path: Path, parse: Callable[[str, Any], PredictItem], encoding: str | None = None) -> list[PredictItem]:
    """One item per row of a CSV/TSV of (user, item) pairs, its columns found by their usual spellings.

    A row with more or fewer fields than the header is that row's error: never read as other columns' ids."""
    if not path.is_file():
        raise UsageError(f"input {path} is not a file.", "pass input=<a .csv with user and item columns>.")
    expected = f"a CSV with a header ({USER_COLUMNS[1]},{ITEM_COLUMNS[1]}) and one (user, item) pair per row"
    header, rows = read_rows(path, expected, encoding)
    user_column = next((name for name in USER_COLUMNS if name in header), None)
    item_column = next((name for name in ITEM_COLUMNS if name in header), None)
    if user_column is None or item_column is None:
        raise DataError(
            f"{path} needs a user and an item column (its header: {', '.join(header)}).",
            f"name them e.g. {USER_COLUMNS[1]},{ITEM_COLUMNS[1]}, separated by a comma or a tab.",
        )
    items = []
    for number, row in enumerate(rows, start=1):
        name = f"row {number}"
        if row.error:
            items.append(PredictItem(name, error=row.error))
        else:
            items.append(parse(name, {"user": row.values[user_column], "item": row.values[item_column]}))
    return items


def parse_query(payload: Any, data: Interactions, model: Any, cfg: DictConfig) -> Query:
    """A record as a query: `{user, item}` scores a pair, `{user[, k]}` asks for top items, `{item[, similar]}`
    for similar ones. An unknown item, a missing id or a bad count is a `RecordError`."""
    if not isinstance(payload, Mapping):
        raise RecordError(f"a recommender record is an object with a user and/or an item, not {type(payload).__name__}")
    raw_user, raw_item = _raw_id(payload, "user"), _raw_id(payload, "item")
    if raw_user is not None and raw_item is not None:
        return PairScore(raw_user, raw_item, data.user_index.get(raw_user), _item(data, raw_item))
    if raw_user is not None:
        return TopItems(raw_user, data.user_index.get(raw_user), _count(payload.get("k", cfg.get("k", 10)), "k"))
    if raw_item is not None:
        if not isinstance(model, ComparesItems):
            raise UsageError(
                f"the model of this run ({type(model).__name__}) has no notion of similar items.",
                "use a run of model=item_item, mf, autorec, bpr or two_tower.",
            )
        count = _count(payload.get("similar", cfg.get("similar", 10)), "similar")
        return SimilarItems(raw_item, _item(data, raw_item), count)
    raise RecordError("a record needs a user, an item, or both")


def answer(run: Run, data: Interactions, queries: list[Query]) -> list[list[dict[str, Any]]]:
    """The rows answering each query: one model call for every known user's item scores, one for the pairs."""
    rows: list[list[dict[str, Any]]] = [[] for _ in queries]
    tops = [(at, query) for at, query in enumerate(queries) if isinstance(query, TopItems)]
    pairs = [(at, query) for at, query in enumerate(queries) if isinstance(query, PairScore)]
    ranked_pairs = data.protocol == RANKING and any(query.user is not None for _, query in pairs)
    wanted = [query.user for _, query in tops] + ([query.user for _, query in pairs] if ranked_pairs else [])
    users = np.unique([user for user in wanted if user is not None]).astype(np.int64)
    scores = _predict(run, data, users) if len(users) else np.zeros((0, data.n_items), np.float32)
    row_of = {int(user): position for position, user in enumerate(users)}
    for at, query in tops:
        rows[at] = _top_items(data, query, None if query.user is None else scores[row_of[query.user]])
    for at, query in enumerate(queries):
        if isinstance(query, SimilarItems):
            rows[at] = _similar_items(data, run.model, query)
    known = [(at, query) for at, query in pairs if query.user is not None]
    if known and not ranked_pairs:  # ratings of the pairs themselves
        pair_inputs = np.array([[query.user, query.item] for _, query in known], np.int64)
        values = _predict(run, data, pair_inputs)
    else:
        values = np.array([scores[row_of[query.user], query.item] for _, query in known])  # type: ignore[index]
    value_of = {at: float(value) for (at, _), value in zip(known, values, strict=True)}
    for at, query in pairs:
        cold = query.user is None
        score = _cold_score(data, query.item) if cold else value_of[at]
        rows[at] = [{"user": query.raw_user, "item": query.raw_item, "score": round(score, 4), "cold_start": cold}]
    return rows


def _predict(run: Run, data: Interactions, inputs: np.ndarray) -> np.ndarray:
    return np.asarray(run.fitter.predict(run.model, data, inputs, run.device), np.float64)


def _top_items(data: Interactions, query: TopItems, scores: np.ndarray | None) -> list[dict[str, Any]]:
    """The best-scored items the user has not seen; the most popular items for a user without history."""
    if scores is None:
        log.warning(
            "user %s is unknown (no interactions in the data): recommending the most popular items", query.raw_user
        )
        scores, seen = data.item_popularity.astype(np.float64), np.zeros(data.n_items, bool)
    else:
        seen = data.history(np.array([query.user]))[0] > 0
    best = [item for item in top_k(scores[None], seen[None], query.k)[0] if not seen[item]]
    return [
        {"rank": rank, "item": _raw(data, item), "title": data.title(item), "score": round(float(scores[item]), 4)}
        for rank, item in enumerate(best, start=1)
    ]


def _similar_items(data: Interactions, model: ComparesItems, query: SimilarItems) -> list[dict[str, Any]]:
    similarity = np.asarray(model.item_similarity(query.item), np.float64)
    itself = np.zeros(len(similarity), bool)
    itself[query.item] = True
    best = [item for item in top_k(similarity[None], itself[None], query.k)[0] if item != query.item]
    return [
        {
            "rank": rank,
            "item": _raw(data, item),
            "title": data.title(item),
            "similarity": round(float(similarity[item]), 4),
        }
        for rank, item in enumerate(best, start=1)
    ]


def _cold_score(data: Interactions, item: int) -> float:
    """A pair of an unknown user: the item's popularity (ranking, 0..1) or its shrunk mean rating (rating)."""
    if data.protocol == RANKING:
        return float(data.item_popularity[item] / max(data.item_popularity.max(), 1))
    pairs, ratings = data.inputs("train"), data.targets("train")
    mine = ratings[pairs[:, 1] == item]
    return float((mine.sum() + COLD_PRIOR * ratings.mean()) / (len(mine) + COLD_PRIOR))


def _raw_id(payload: Mapping[str, Any], key: str) -> str | None:
    """The id under `key` as the data's index spells it (`196`, also for 196.0); None when absent."""
    if key not in payload or payload[key] is None:
        return None
    value = payload[key]
    if isinstance(value, float):
        if math.isnan(value):
            raise RecordError(f"the {key} id is empty")
        value = int(value) if value.is_integer() else value
    text = str(value).strip()
    if not text:
        raise RecordError(f"the {key} id is empty")
    return text


def _item(data: Interactions, raw: str) -> int:
    index = data.item_index.get(raw)
    if index is None:
        raise RecordError(f"unknown item id {raw}: not in {data.describe_source()} (e.g. {data.item_ids[0]})")
    return index


def _count(value: Any, name: str) -> int:
    """A positive whole number of items: `k=abc`, `k=1.5`, `k=true` or `k=0` say so rather than guess one."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise RecordError(f"{name}={value} is not a whole number (e.g. {name}=10)")
    try:
        count = int(value.strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError, OverflowError):
        raise RecordError(f"{name}={value} is not a whole number (e.g. {name}=10)") from None
    if count < 1:
        raise RecordError(f"{name}={value}: ask for at least one item (e.g. {name}=10)")
    return count


def _raw(data: Interactions, item: int) -> Any:
    """The dataset's own id of an item index, as a plain Python value (for CSV and JSON)."""
    value = data.item_ids[item]
    return value.item() if isinstance(value, np.generic) else value
