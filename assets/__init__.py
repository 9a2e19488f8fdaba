"""Data files (MJCF models, card art, fonts) loaded with importlib.resources."""
