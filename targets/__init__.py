"""Built-in hardware target plugins (import name ``hwnas_targets``).

Each module registers its target kind through the same hook a third-party plugin uses.
"""
