"""Raccord's daemon: the only package that knows all three protocols."""

__version__ = "0.1.0"
