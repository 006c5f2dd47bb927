"""The two EMS objectives, as plain functions of tensors (so tests can check them by hand).

- XTR (cross-lingual token-level reconstruction): the distribution predicted from one sentence's
  pooled vector (and the other side's language) should match the other sentence's bag of tokens:
  ``KL(q || softmax(logits))`` with ``q`` uniform over the other sentence's token positions (a token
  that occurs twice gets twice the mass; padding none).
- Contrastive: cosine similarities of projected vectors over a temperature, in-batch negatives,
  cross-entropy in both directions (xx → en and en → xx), averaged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bag_of_tokens(input_ids: torch.Tensor, mask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Target distribution per row: token counts over non-pad positions, normalised to sum 1."""
    counts = torch.zeros(input_ids.shape[0], vocab_size, dtype=torch.float32, device=input_ids.device)
    counts.scatter_add_(1, input_ids, mask.to(torch.float32))
    return counts / counts.sum(1, keepdim=True).clamp_min(1.0)


def xtr_kl(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``KL(target || softmax(logits))``."""
    return F.kl_div(F.log_softmax(logits.float(), dim=-1), target, reduction="batchmean")


def contrastive_loss(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE over cosine similarities: row i of ``a`` should pick row i of ``b`` and vice versa."""
    sims = F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T / temperature
    labels = torch.arange(sims.shape[0], device=sims.device)
    return 0.5 * (F.cross_entropy(sims, labels) + F.cross_entropy(sims.T, labels))
