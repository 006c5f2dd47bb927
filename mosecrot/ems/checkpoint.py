"""EMS checkpoints: model, tokenizer, config and metadata in one directory, bound together.

``model.pt`` records the fingerprint of the tokenizer and of the config it was trained with; loading
refuses a tokenizer or config that does not match, so vectors are never computed with token ids the
model never saw. A checkpoint is written into a temporary directory and swapped into place, so an
interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from mosecrot.cache import stable_hash
from mosecrot.configschema import to_dict
from mosecrot.ems.config import EMSConfig, ems_config_from_dict
from mosecrot.ems.model import EMSModel, collate
from mosecrot.ems.tokenizer import EMSTokenizer
from mosecrot.errors import InputError
from mosecrot.training import resolve_device

CHECKPOINT_FORMAT = 1
FILES = ("model.pt", "tokenizer.model", "config.yaml", "meta.json")


@dataclass
class EMSBundle:
    """A trained encoder with the tokenizer and config it belongs to (``meta``: data, step, exclusions)."""

    model: EMSModel
    tokenizer: EMSTokenizer
    config: EMSConfig
    meta: dict[str, Any] = field(default_factory=dict)
    directory: Path | None = None

    @property
    def identity(self) -> str:
        """Names this exact set of weights (cache key of vectors computed with it)."""
        return self.meta.get("checkpoint_id", "unsaved")

    @property
    def excluded_ids(self) -> set[str]:
        return {v for ids in self.meta.get("excluded", {}).values() for v in ids}

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 128, device: str | torch.device = "auto") -> np.ndarray:
        """L2-normalised mean-pooled sentence vectors (the encoder only; training heads are unused), on a GPU
        when there is one (``device="auto"``)."""

        device = resolve_device(device) if isinstance(device, str) else device
        model = self.model.to(device)
        was_training = model.training
        model.eval()
        ids = self.tokenizer.encode(list(texts), self.config.train.max_length)
        order = np.argsort([len(r) for r in ids], kind="stable")  # similar lengths batch together
        out = np.zeros((len(ids), model.encoder.tokens.embedding_dim), dtype=np.float32)
        for start in range(0, len(ids), batch_size):
            rows = order[start : start + batch_size]
            x, mask = collate([ids[i] for i in rows], self.tokenizer.pad_id)
            vec = model.encode(x.to(device), mask.to(device))
            out[rows] = torch.nn.functional.normalize(vec.float(), dim=-1).cpu().numpy()
        model.train(was_training)
        return out


def save_checkpoint(
    directory: str | Path,
    model: EMSModel,
    tokenizer: EMSTokenizer,
    config: EMSConfig,
    meta: dict[str, Any],
    train_state: dict[str, Any] | None = None,
) -> Path:
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    state = {k: v.detach().cpu() for k, v in getattr(model, "module", model).state_dict().items()}
    meta = {
        **meta,
        "format": CHECKPOINT_FORMAT,
        "tokenizer_fingerprint": tokenizer.fingerprint,
        "config_fingerprint": config.fingerprint(),
    }
    meta["checkpoint_id"] = stable_hash(
        {k: meta.get(k) for k in ("config_fingerprint", "tokenizer_fingerprint", "step", "data_fingerprint")}
    )
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "state_dict": state,
            "tokenizer_fingerprint": tokenizer.fingerprint,
            "config_fingerprint": config.fingerprint(),
            "vocab_size": tokenizer.vocab_size,
        },
        tmp / "model.pt",
    )
    tokenizer.save(tmp / "tokenizer.model")
    (tmp / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True))
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=_jsonable))
    if train_state is not None:
        torch.save(train_state, tmp / "train_state.pt")
    old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    return str(obj)


def is_checkpoint(directory: str | Path) -> bool:
    return (Path(directory) / "model.pt").is_file()


def load_checkpoint(
    directory: str | Path, tokenizer_path: str | Path | None = None, map_location: str | torch.device = "cpu"
) -> EMSBundle:
    """Load and cross-check a checkpoint; ``tokenizer_path`` replaces its own tokenizer (must match)."""
    directory = Path(directory)
    for name in FILES:
        if not (directory / name).is_file():
            raise InputError(
                f"not an EMS checkpoint: {name} is missing",
                path=directory,
                expected="a directory written by `mosecrot ems train` (" + ", ".join(FILES) + ")",
            )
    tokenizer = EMSTokenizer.load(tokenizer_path or directory / "tokenizer.model")
    blob = torch.load(directory / "model.pt", map_location=map_location, weights_only=True)
    if blob.get("format") != CHECKPOINT_FORMAT:
        raise InputError(
            f"checkpoint format {blob.get('format')!r} is not {CHECKPOINT_FORMAT}", path=directory / "model.pt"
        )
    if blob["tokenizer_fingerprint"] != tokenizer.fingerprint:
        raise InputError(
            f"the tokenizer (fingerprint {tokenizer.fingerprint}) does not belong to this model, which was "
            f"trained with tokenizer {blob['tokenizer_fingerprint']}",
            path=tokenizer_path or directory / "tokenizer.model",
            expected="the tokenizer.model saved with the checkpoint",
        )
    data = yaml.safe_load((directory / "config.yaml").read_text(encoding="utf-8"))
    try:
        config = ems_config_from_dict(data)
    except InputError as err:
        raise InputError(f"checkpoint config: {err}", path=directory / "config.yaml") from err
    if blob["config_fingerprint"] != config.fingerprint():
        raise InputError(
            "config.yaml does not belong to this model (its fingerprint differs from the one the "
            "model was trained with)",
            path=directory / "config.yaml",
        )
    meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    if meta.get("tokenizer_fingerprint") != tokenizer.fingerprint:
        raise InputError("meta.json does not belong to this checkpoint", path=directory / "meta.json")
    model = EMSModel(tokenizer.vocab_size, len(config.all_languages), config.model, tokenizer.pad_id)
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return EMSBundle(model, tokenizer, config, meta, directory)


def load_train_state(directory: str | Path) -> dict[str, Any] | None:
    path = Path(directory) / "train_state.pt"
    return torch.load(path, map_location="cpu", weights_only=False) if path.is_file() else None
