"""Command-line entry points, one module per command (see keras_onebit/__main__.py)."""
