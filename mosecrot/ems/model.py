"""The EMS model: one Transformer encoder for both sides of a pair, mean-pooled, plus two training
heads (XTR and contrastive) that are dropped at inference, where only `encode` is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mosecrot.ems.config import EMSLossConfig, EMSModelConfig
from mosecrot.ems.losses import bag_of_tokens, contrastive_loss, xtr_kl


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token states where ``mask`` is 1 (padding never contributes)."""
    m = mask.unsqueeze(-1).to(states.dtype)
    return (states * m).sum(1) / m.sum(1).clamp_min(1.0)


def _activation(name: str):
    return F.silu if name == "swish" else F.gelu


class EMSEncoder(nn.Module):
    """Token + learned position embeddings → pre-norm Transformer encoder → mean pooling."""

    def __init__(self, vocab_size: int, cfg: EMSModelConfig, pad_id: int = 0) -> None:
        super().__init__()
        # The shape fields are filled from the preset in EMSModelConfig.__post_init__.
        assert cfg.d_model is not None and cfg.heads is not None and cfg.ffn is not None and cfg.layers is not None
        self.pad_id = pad_id
        self.tokens = nn.Embedding(vocab_size, cfg.d_model, padding_idx=pad_id)
        self.positions = nn.Embedding(cfg.max_positions, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            cfg.d_model,
            cfg.heads,
            cfg.ffn,
            cfg.dropout,
            activation=_activation(cfg.activation),
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(
            layer, cfg.layers, norm=nn.LayerNorm(cfg.d_model), enable_nested_tensor=False
        )

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Sentence vectors (batch x d_model)."""
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.dropout(self.tokens(input_ids) + self.positions(pos)[None])
        states = self.layers(x, src_key_padding_mask=~mask.bool())
        return mean_pool(states, mask)


class XTRHead(nn.Module):
    """pooled ⊕ language embedding → dense + swish + LayerNorm → vocabulary logits."""

    def __init__(self, d_model: int, language_dim: int, vocab_size: int, activation: str) -> None:
        super().__init__()
        self.dense = nn.Linear(d_model + language_dim, d_model)
        self.act = _activation(activation)
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, vocab_size)

    def forward(self, pooled: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(self.act(self.dense(torch.cat([pooled, language], dim=-1)))))


class ProjectionHead(nn.Module):
    """d → d → projection_dim, the space the contrastive loss compares in."""

    def __init__(self, d_model: int, out_dim: int, activation: str) -> None:
        super().__init__()
        self.hidden = nn.Linear(d_model, d_model)
        self.act = _activation(activation)
        self.out = nn.Linear(d_model, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.hidden(x)))


@dataclass
class EMSLosses:
    total: torch.Tensor
    xtr: torch.Tensor
    contrastive: torch.Tensor

    def floats(self) -> dict[str, float]:
        return {"loss": self.total.item(), "xtr": self.xtr.item(), "contrastive": self.contrastive.item()}


class EMSModel(nn.Module):
    def __init__(self, vocab_size: int, num_languages: int, cfg: EMSModelConfig, pad_id: int = 0) -> None:
        super().__init__()
        assert cfg.d_model is not None  # filled from the preset in EMSModelConfig.__post_init__
        self.vocab_size = vocab_size
        self.encoder = EMSEncoder(vocab_size, cfg, pad_id)
        self.languages = nn.Embedding(num_languages, cfg.language_dim)
        self.xtr = XTRHead(cfg.d_model, cfg.language_dim, vocab_size, cfg.activation)
        self.projection = ProjectionHead(cfg.d_model, cfg.projection_dim, cfg.activation)

    def encode(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids, mask)

    def forward(
        self,
        ids_a: torch.Tensor,
        mask_a: torch.Tensor,
        lang_a: torch.Tensor,
        ids_b: torch.Tensor,
        mask_b: torch.Tensor,
        lang_b: torch.Tensor,
        loss: EMSLossConfig,
    ) -> EMSLosses:
        """Losses of a batch of pairs (a_i, b_i); ``lang_*`` are language-embedding row ids per example.
        A head whose weight is 0 is not run (its loss reads 0)."""
        u, v = self.encoder(ids_a, mask_a), self.encoder(ids_b, mask_b)
        zero = u.new_zeros(())
        xtr = zero
        if loss.xtr_weight > 0:
            # a -> b: predict b's tokens from a's vector and b's language; and the reverse.
            logits_ab = self.xtr(u, self.languages(lang_b))
            logits_ba = self.xtr(v, self.languages(lang_a))
            # summed over the two directions, as in the reference code (total = XTR + 2 x contrastive)
            xtr = xtr_kl(logits_ab, bag_of_tokens(ids_b, mask_b, self.vocab_size)) + xtr_kl(
                logits_ba, bag_of_tokens(ids_a, mask_a, self.vocab_size)
            )
        con = zero
        if loss.contrastive_weight > 0:
            con = contrastive_loss(self.projection(u), self.projection(v), loss.temperature)
        return EMSLosses(loss.xtr_weight * xtr + loss.contrastive_weight * con, xtr, con)


def collate(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and a 0/1 mask."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask
