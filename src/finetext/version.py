"""The package version, in a module of its own so every module can read it without importing the package root
(which would load the whole API)."""

__version__ = "0.1.0"
