"""Static word vectors: loading (fastText, gensim), training (fastText on a corpus), lookup."""

from mosecrot.vectors.io import load_vectors, load_vectors_for_languages, save_vectors_vec
from mosecrot.vectors.static import StaticVectors
from mosecrot.vectors.train import VectorTrainingConfig, train_language_vectors, train_vectors

__all__ = [
    "StaticVectors",
    "VectorTrainingConfig",
    "load_vectors",
    "load_vectors_for_languages",
    "save_vectors_vec",
    "train_language_vectors",
    "train_vectors",
]
