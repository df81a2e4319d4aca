"""Model adapters, one file per family, found through ``registry``."""

from core.models.base import MODALITIES, Component, ModelAdapter, Modality
from core.models.registry import available_models, load_model

__all__ = ["MODALITIES", "Component", "ModelAdapter", "Modality", "available_models", "load_model"]
