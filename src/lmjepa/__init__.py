"""lmjepa: train language models with JEPA objectives and measure honestly whether they help."""

__version__ = "0.1.0"
