"""EMS (Mao et al. 2024): a multilingual sentence encoder trained on English-centric parallel verses with
cross-lingual token-level reconstruction (XTR) and sentence-level contrastive learning.

Modules, one concept each: `config` (the training YAML), `data` (verse pairs without evaluation
verses, language sampling), `tokenizer` (SentencePiece), `losses`, `model`, `checkpoint` (model +
tokenizer + config bound by fingerprints), `train` (`train_ems`), `evaluate` (retrieval), `method`
(``kind: ems`` for `mosecrot run`). Importable without Ray.
"""

from mosecrot.ems.config import EMSConfig, load_ems_config
from mosecrot.ems.train import EMSHooks, EMSTrainResult, train_ems

__all__ = ["EMSConfig", "EMSHooks", "EMSTrainResult", "load_ems_config", "train_ems"]
