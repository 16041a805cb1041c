"""Built-in search strategy, predictor and supernet plugins (import name ``hwnas_plugins``).

Each module registers through the same hooks a third-party plugin uses.
"""
