"""What the neural sentiment models share beyond the core's `Classifier`: the validation and softmax prediction
steps come from the core; this adds the training step of ensembles and adversarial training, AdamW with linear
warmup then linear decay, and gradient×input token attributions (`Explains`). The models are in `models.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from shared.capabilities import Explains, Explanation
from shared.classification import Classifier
from shared.errors import UsageError

CLASSES = 2  # negative, positive
Batch = dict[str, Any]


class TextClassifier(Classifier, Explains):
    """The core's classifier steps plus what the neural sentiment models share: ensembles, adversarial
    training, the optimiser and schedule, and gradient×input explanations.

    A subclass says how texts become tensors (`encode`), how token ids become vectors (`embed`), and
    how vectors become two logits (`classify`); splitting at the embeddings is what lets `explain`
    take gradients with respect to each token's vector, and lets adversarial training perturb them.
    """

    def __init__(self, lr: float, weight_decay: float, warmup: float, adversarial: float = 0.0) -> None:
        super().__init__(CLASSES)
        if adversarial < 0:
            raise UsageError(f"model.adversarial={adversarial} is negative.", "use 0 (off) or a size such as 0.05.")
        self.lr, self.weight_decay, self.warmup, self.adversarial = lr, weight_decay, warmup, adversarial

    # --- what a subclass provides ----------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> Batch:
        raise NotImplementedError

    def embed(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def classify(self, embeddings: torch.Tensor, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def member_logits(self, embeddings: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Logits of each member of an ensemble, (members, batch, 2): each is trained on its own loss, and
        `classify` averages them. A single model is an ensemble of one."""
        return self.classify(embeddings, batch)[None]

    def tokens(self, batch: Batch) -> list[list[str]]:
        """The tokens of each text, aligned with the embedding positions they occupy."""
        raise NotImplementedError

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        """Whether each text is longer than the model reads (the rest is cut off)."""
        return [False] * len(texts)

    def special_tokens(self) -> set[str]:
        """Markers that are not words of the text ([CLS], <pad>): left out of explanations."""
        return {"<pad>"}

    # --- shared -----------------------------------------------------------------------------
    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self.encode(texts)
        return self.classify(self.embed(batch), batch)

    def training_step(self, batch: Sequence[Any], batch_index: int) -> torch.Tensor:
        """Each ensemble member learns on its own loss, plus the adversarial loss when asked; accuracy is
        the averaged ensemble's, as it predicts."""
        texts, labels = batch
        encoded = self.encode(texts)
        embeddings = self.embed(encoded)
        if self.adversarial > 0 and not embeddings.requires_grad:  # frozen embeddings: still perturbed
            embeddings.requires_grad_(True)
        members = self.member_logits(embeddings, encoded)
        loss = members_loss(members, labels)
        if self.adversarial > 0:
            loss = loss + self.adversarial_loss(loss, embeddings, encoded, labels)
        self.log_training(loss, members.mean(dim=0), labels)
        return loss

    def adversarial_loss(
        self, loss: torch.Tensor, embeddings: torch.Tensor, encoded: Batch, labels: torch.Tensor
    ) -> torch.Tensor:
        """The loss again with each text's embeddings pushed the way that raises it most (Miyato et al. 2017,
        adversarial training for text): a step along the gradient of size `adversarial` × the text's own
        embedding norm, so the size means the same for any embedding scale. A regulariser: predictions
        should not flip under a small worst-case change of the word vectors."""
        (gradient,) = torch.autograd.grad(loss, embeddings, retain_graph=True)
        gradient = gradient.detach()
        scale = embeddings.detach().flatten(1).norm(dim=1) / gradient.flatten(1).norm(dim=1).clamp(min=1e-12)
        perturbed = embeddings + self.adversarial * scale[:, None, None] * gradient
        return members_loss(self.member_logits(perturbed, encoded), labels)

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW without decay on biases and norms; linear warmup over `warmup` of the steps, then linear decay."""
        decay = [p for n, p in self.named_parameters() if p.requires_grad and p.ndim > 1 and "norm" not in n.lower()]
        rest = [
            p for n, p in self.named_parameters() if p.requires_grad and not (p.ndim > 1 and "norm" not in n.lower())
        ]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=self.lr
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = max(1, int(self.warmup * total))

        def factor(step: int) -> float:
            return (step + 1) / warmup if step < warmup else max(0.0, (total - step) / max(1, total - warmup))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def explain(self, texts: Sequence[str], count: int = 5) -> list[Explanation]:
        """Gradient×input: per text, the tokens whose vectors move the positive-minus-negative logit the most.

        Positive scores push towards positive. Cheap (one backward pass) and faithful to first order.
        """
        was_training = self.training
        self.eval()
        results: list[list[tuple[str, float]]] = []
        # cuDNN's RNN cannot run backward in eval mode; the plain kernels can.
        cudnn_off = torch.backends.cudnn.flags(enabled=False) if self.device.type == "cuda" else nullcontext()
        with torch.enable_grad(), cudnn_off:
            for start in range(0, len(texts), 64):
                batch = self.encode(texts[start : start + 64])
                embeddings = self.embed(batch).detach().requires_grad_(True)
                logits = self.classify(embeddings, batch).float()
                margin = (logits[:, 1] - logits[:, 0]).sum()
                (gradient,) = torch.autograd.grad(margin, embeddings)
                scores = (gradient * embeddings).sum(-1).detach().cpu().numpy()
                for row, tokens in enumerate(self.tokens(batch)):
                    values = scores[row, : len(tokens)]
                    order = [i for i in np.argsort(-np.abs(values)) if tokens[i] not in self.special_tokens()][:count]
                    results.append([(tokens[i], float(values[i])) for i in order])
        self.train(was_training)
        return results


def members_loss(members: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every member's logits (members, batch, 2): each member of an ensemble learns on its own."""
    return F.cross_entropy(members.flatten(0, 1), labels.repeat(len(members)))
