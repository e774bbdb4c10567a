"""cmcgns: cross-modal clustering-guided negative sampling for chest X-ray / report pretraining."""

__version__ = "0.1.0"
