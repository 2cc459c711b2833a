"""What a recommender may offer, declared by subclassing (as the core's `shared.capabilities`): the project asks
`isinstance(model, ComparesItems)`, never which class a model is."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from projects.recommender.data import RANKING, RATING
from shared.capabilities import Describes


class Recommends(Describes):
    """A recommender: the protocols it can be trained and scored under (the project refuses the others), which
    its details record for `metrics.json` and the model card."""

    protocols: ClassVar[tuple[str, ...]] = (RATING, RANKING)

    def details(self) -> dict[str, Any]:
        return {
            "protocols": ", ".join(self.protocols),
            "supports ratings": RATING in self.protocols,
            "supports ranking": RANKING in self.protocols,
        }


class ComparesItems(ABC):
    """A model with a notion of how alike two items are (`predict item=ID similar=K`)."""

    @abstractmethod
    def item_similarity(self, item: int) -> np.ndarray:
        """How alike every item (index) is to `item`: one value per item, higher is more alike."""
