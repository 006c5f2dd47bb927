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
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import torch
from tokenizers import Tokenizer, models, processors
from transformers import PreTrainedTokenizerFast

from mosecrot.anchors import AnchorSet
from mosecrot.errors import InputError
from mosecrot.plm import single_token_ids
from mosecrot.relative import RelativeConfig, build_mapping
from mosecrot.relearn import RelearnConfig
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
    # Hybrid tokenisation at test time (`HYBRID`): "off", or which target words the PLM's own tokenizer reads
    # with the model's own rows, in the same sequence as the stitched words ("oov": words without a stored
    # vector, ``oov`` then unused; "oov+shared": also words that are whole tokens of the PLM vocabulary).
    hybrid: Literal["off", "oov", "oov+shared"] = "off"
    relative: RelativeConfig = field(default_factory=RelativeConfig)
    # Re-learn the target rows through the frozen English model from parallel Bible verses (`RelearnConfig`).
    relearn: RelearnConfig = field(default_factory=RelearnConfig)

    def validate(self, prefix: str = "stitch") -> None:
        """Checks across options, when a config is loaded: "standard" weighting with similarities that can be
        negative needs ``relative.negatives`` (`RelativeConfig.check_negatives`), the default relative
        config (cosine, standard) included."""
        self.relative.validate(prefix=f"{prefix}.relative")
        self.relative.check_negatives(f"{prefix}.relative")
        check_hybrid(self.hybrid, f"{prefix}.hybrid")
        self.relearn.validate(f"{prefix}.relearn")


HYBRID = ("off", "oov", "oov+shared")


def check_hybrid(value: object, key: str) -> None:
    if value not in HYBRID:
        raise InputError(f"unknown hybrid tokenisation {value!r}", key=key, expected=" | ".join(HYBRID))


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

    Ids ``0 .. S-1`` are the PLM's special tokens (same strings), ids ``S .. S+W-1`` the words. With hybrid
    tokenisation (``plm_tokenizer`` set) every other word is read by the PLM's tokenizer and its pieces get
    ids ``S + W + plm_id``: the embedding matrix then ends with the model's own rows (`plm_offset`).
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
    plm_tokenizer: Any = None  # hybrid: the PLM's tokenizer, which reads the words without a stitched row
    hybrid: str = "off"

    @property
    def plm_offset(self) -> int:
        """Id of PLM token 0 in hybrid input ids (special tokens, then the words, then the PLM vocabulary)."""
        return len(self.special_tokens) + len(self.words)

    def encode(self, texts: list[str], max_length: int) -> list[list[int]]:
        """Word-tokenise with the language's tokenizer, then map words to ids ([CLS] ... [SEP])."""
        split = get_tokenizer(self.language, self.lowercase)
        words = [split(t) for t in texts]
        if self.plm_tokenizer is not None:
            return self._encode_hybrid(words, max_length)
        if self.oov == "skip":
            vocab = self.tokenizer.get_vocab()
            words = [[w for w in ws if w in vocab] for ws in words]
        enc = self.tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        return enc["input_ids"]

    def _encode_hybrid(self, texts: list[list[str]], max_length: int) -> list[list[int]]:
        """Stitched words by their own id, every other word as the PLM's pieces (one sequence per text)."""
        index = {w: i + len(self.special_tokens) for i, w in enumerate(self.words)}
        fallback = sorted({w for ws in texts for w in ws if w not in index})
        pieces = dict(zip(fallback, _plm_pieces(self.plm_tokenizer, fallback), strict=True))
        vocab = self.tokenizer.get_vocab()
        cls, sep = vocab[self.tokenizer.cls_token], vocab[self.tokenizer.sep_token]
        offset = self.plm_offset
        out = []
        for ws in texts:
            ids: list[int] = []
            for w in ws:
                ids.extend([index[w]] if w in index else [offset + p for p in pieces[w]])
            out.append([cls, *ids[: max_length - 2], sep])
        return out


def _plm_pieces(tokenizer: Any, words: list[str]) -> list[list[int]]:
    """The PLM's token ids of each word, read on its own (no special tokens)."""
    if not words:
        return []
    return tokenizer(words, add_special_tokens=False)["input_ids"]


def build_target_vocabulary(
    language: str,
    texts: Iterable[str],
    vectors: StaticVectors,
    plm_tokenizer,
    oov: str = "subword",
    lowercase: bool = True,
    hybrid: str = "off",
) -> TargetVocabulary:
    """Every word of ``texts`` that gets a vector under the OOV policy, plus the PLM's special tokens. With
    ``hybrid`` on, only words with a stored vector (and, for "oov+shared", that are not whole PLM tokens) get
    a stitched row; the rest are read by the PLM's tokenizer (`TargetVocabulary.encode`)."""
    check_hybrid(hybrid, "stitch.hybrid")
    split = get_tokenizer(language, lowercase)
    counts: Counter = Counter()
    for text in texts:
        counts.update(split(text))
    shared = set(single_token_ids(plm_tokenizer, list(counts))) if hybrid == "oov+shared" else set()
    words, rows, n_sub, n_oov, n_plm = [], [], 0, 0, 0
    for word in sorted(counts):  # sorted: a deterministic vocabulary
        if hybrid != "off" and (word not in vectors or word in shared):
            n_plm += counts[word]
            continue
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
    if not words and hybrid == "off":
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
        "plm_token_share": n_plm / total if total else 0.0,
    }
    return TargetVocabulary(
        language,
        words,
        np.stack(rows).astype(np.float32) if rows else np.zeros((0, vectors.dim), np.float32),
        specials,
        special_token_ids(plm_tokenizer),
        fast,
        lowercase,
        oov,
        stats,
        plm_tokenizer=plm_tokenizer if hybrid != "off" else None,
        hybrid=hybrid,
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
        anchor_weights=anchors.weights,
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
