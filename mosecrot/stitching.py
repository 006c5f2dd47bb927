"""Model stitching: replace a PLM's input embeddings by relative-representation mappings.

- ``F_s`` (every PLM token): each token becomes the weighted average of the English PLM embeddings of
  its most similar anchors, similarities measured in the PLM's own embedding space.
- ``F_t`` (target words): the same, with similarities measured in the target *static* space against
  the target side of the anchors, so target words land in the PLM's embedding space without any
  learned projection. Neighbourhood terms (CSLS's r_a) are computed over the whole static vocabulary,
  as F_s's are over the whole PLM vocabulary: a word's row never depends on the evaluation texts.
- The target text is read by a word-level tokenizer (``tokenizers`` WordLevel) whose vocabulary is
  the PLM's special tokens followed by the target words; special tokens keep their PLM rows.

The paper's open points are options here (`StitchConfig`), defaults paper-faithful.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, cast

import numpy as np
import torch
from tokenizers import Tokenizer, models, processors
from transformers import PreTrainedTokenizerFast

from mosecrot.anchors import AnchorSet
from mosecrot.errors import InputError
from mosecrot.relative import RelativeConfig, build_mapping
from mosecrot.text.tokenize import get_tokenizer
from mosecrot.vectors import StaticVectors

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass
class StitchConfig:
    """How the model is stitched. Defaults follow the paper where it is explicit."""

    # relative: F_s replaces E_s before fine-tuning (the paper). original: keep E_s, map only the target.
    source_side: Literal["relative", "original"] = "relative"
    # Whether the (stitched) embedding matrix is updated while fine-tuning on English.
    embeddings: Literal["trainable", "frozen"] = "trainable"
    # Which English anchor rows F_t averages: the embedding rows before or after fine-tuning.
    target_anchor_rows: Literal["original", "finetuned"] = "original"
    # Target words without a stored static vector: subword vector (fastText), [UNK], or dropped.
    oov: Literal["subword", "unk", "skip"] = "subword"
    relative: RelativeConfig = field(default_factory=RelativeConfig)

    def validate(self, prefix: str = "stitch") -> None:
        """Checks across options, when a config is loaded: "standard" weighting with similarities that can be
        negative needs ``relative.negatives`` (`RelativeConfig.check_negatives`), the default relative
        config (cosine, standard) included."""
        self.relative.validate(prefix=f"{prefix}.relative")
        self.relative.check_negatives(f"{prefix}.relative")


def special_token_ids(tokenizer) -> list[int]:
    return sorted(set(tokenizer.all_special_ids))


def source_mapping(
    embeddings: torch.Tensor, anchors_token_ids: list[int], special_ids: list[int], config: RelativeConfig
) -> torch.Tensor:
    """F_s for every PLM token; special tokens keep their own rows."""
    emb = embeddings.detach().float()
    anchor_rows = emb[anchors_token_ids]
    mapped = build_mapping(emb, anchor_rows, anchor_rows, config)
    mapped[special_ids] = emb[special_ids]
    return mapped


@dataclass
class TargetVocabulary:
    """Target words with their static vectors, and the word-level tokenizer over them.

    Ids ``0 .. S-1`` are the PLM's special tokens (same strings), ids ``S ..`` the words.
    """

    language: str
    words: list[str]
    vectors: np.ndarray  # (len(words), d_t)
    special_tokens: list[str]
    plm_special_ids: list[int]
    tokenizer: PreTrainedTokenizerFast
    lowercase: bool
    oov: str
    stats: dict

    def encode(self, texts: list[str], max_length: int) -> list[list[int]]:
        """Word-tokenise with the language's tokenizer, then map words to ids ([CLS] ... [SEP])."""
        split = get_tokenizer(self.language, self.lowercase)
        words = [split(t) for t in texts]
        if self.oov == "skip":
            vocab = self.tokenizer.get_vocab()
            words = [[w for w in ws if w in vocab] for ws in words]
        enc = self.tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        return enc["input_ids"]


def build_target_vocabulary(
    language: str,
    texts: Iterable[str],
    vectors: StaticVectors,
    plm_tokenizer,
    oov: str = "subword",
    lowercase: bool = True,
) -> TargetVocabulary:
    """Every word of ``texts`` that gets a vector under the OOV policy, plus the PLM's special tokens."""
    split = get_tokenizer(language, lowercase)
    counts: Counter = Counter()
    for text in texts:
        counts.update(split(text))
    words, rows, n_sub, n_oov = [], [], 0, 0
    for word in sorted(counts):  # sorted: a deterministic vocabulary
        if word in vectors:
            words.append(word)
            rows.append(vectors.matrix[vectors.index[word]])
            continue
        sub = vectors.oov_vector(word) if oov == "subword" else None
        if sub is not None:
            words.append(word)
            rows.append(sub)
            n_sub += counts[word]
        else:
            n_oov += counts[word]
    if not words:
        raise InputError(
            f"no word of the {language} texts has a static vector",
            key="vectors",
            expected="static vectors of the same language and tokenisation",
        )
    specials = [plm_tokenizer.convert_ids_to_tokens(i) for i in special_token_ids(plm_tokenizer)]
    vocab = {tok: i for i, tok in enumerate(specials)}
    for w in words:
        vocab.setdefault(w, len(vocab))
    unk = plm_tokenizer.unk_token
    wl = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    cls, sep = plm_tokenizer.cls_token, plm_tokenizer.sep_token
    wl.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B {sep}",
        special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=wl,
        unk_token=unk,
        cls_token=cls,
        sep_token=sep,
        pad_token=plm_tokenizer.pad_token,
        mask_token=plm_tokenizer.mask_token,
    )
    total = sum(counts.values())
    stats = {
        "words": len(words),
        "tokens": total,
        "subword_token_share": n_sub / total if total else 0.0,
        "oov_token_share": n_oov / total if total else 0.0,
    }
    return TargetVocabulary(
        language,
        words,
        np.stack(rows).astype(np.float32),
        specials,
        special_token_ids(plm_tokenizer),
        fast,
        lowercase,
        oov,
        stats,
    )


def target_mapping(
    vocab: TargetVocabulary,
    vectors: StaticVectors,
    anchors: AnchorSet,
    english_rows: torch.Tensor,
    special_rows: torch.Tensor,
    config: RelativeConfig,
) -> torch.Tensor:
    """F_t: rows for the target vocabulary (special tokens first, copied from the model).

    Neighbourhood terms (CSLS's r_a) run over every stored row of ``vectors``, not over the vocabulary of the
    evaluation texts, so a word's row is the same whatever other words are evaluated."""
    anchor_static = np.stack([vectors.vector(t) for t in anchors.target_words]).astype(np.float32)
    mapped = build_mapping(
        torch.from_numpy(vocab.vectors),
        torch.from_numpy(anchor_static),
        english_rows.detach().float(),
        config,
        neighbourhood=_read_only_tensor(vectors.matrix),
    )
    return torch.cat([special_rows.detach().float(), mapped], dim=0)


def _read_only_tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor over ``array`` without a copy; vectors shared through Ray's object store are read-only, which
    is fine for a matrix that is only read (torch warns about it all the same)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def swap_input_embeddings(
    model: PreTrainedModel, matrix: torch.Tensor, trainable: bool, padding_idx: int | None = None
) -> None:
    """Replace the word-embedding matrix in place (position/type embeddings and body untouched)."""
    old = cast(torch.nn.Embedding, model.get_input_embeddings())
    new = torch.nn.Embedding(matrix.shape[0], matrix.shape[1], padding_idx=padding_idx)
    with torch.no_grad():
        new.weight.copy_(matrix.to(old.weight.device, old.weight.dtype))
    new.weight.requires_grad_(trainable)
    new.to(old.weight.device)
    model.set_input_embeddings(new)
    model.config.vocab_size = matrix.shape[0]
