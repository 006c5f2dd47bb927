"""The two EMS objectives, as plain functions of tensors (so tests can check them by hand).

- XTR (cross-lingual token-level reconstruction): the distribution predicted from one sentence's
  pooled vector (and the other side's language) should match the other sentence's bag of tokens:
  ``KL(q || softmax(logits))`` with ``q`` uniform over the other sentence's distinct token ids (a
  token that occurs twice counts once; padding none), summed over the two directions. The reference
  code (Mao-KU/EMS, ``index_fill_`` of ``1/len``) also sets each distinct id once; it gives each the
  mass ``1/len``, so its target sums to less than 1 when a sentence repeats a token; we renormalise so
  that ``q`` is a distribution, as MISSION states ("uniform over its token ids").
- Contrastive: cosine similarities of projected vectors over a temperature, in-batch negatives,
  cross-entropy in both directions (xx → en and en → xx), averaged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Bumped whenever a loss's definition changes, so cached encoders trained on the old one are not reused.
# 2: XTR target over distinct ids, directions summed (1: over positions, averaged).
OBJECTIVE_VERSION = 2


def bag_of_tokens(input_ids: torch.Tensor, mask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Target distribution per row: uniform over the distinct token ids at non-pad positions."""
    present = torch.zeros(input_ids.shape[0], vocab_size, dtype=torch.float32, device=input_ids.device)
    # amax: an id seen at any non-pad position is present once, however often it repeats
    present.scatter_reduce_(1, input_ids, mask.to(torch.float32), reduce="amax")
    return present / present.sum(1, keepdim=True).clamp_min(1.0)


def xtr_kl(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``KL(target || softmax(logits))``."""
    return F.kl_div(F.log_softmax(logits.float(), dim=-1), target, reduction="batchmean")


def contrastive_loss(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE over cosine similarities: row i of ``a`` should pick row i of ``b`` and vice versa."""
    sims = F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T / temperature
    labels = torch.arange(sims.shape[0], device=sims.device)
    return 0.5 * (F.cross_entropy(sims, labels) + F.cross_entropy(sims.T, labels))
