"""The model stage: search spaces, the Supernet base, checkpoints, data, accuracy and training.

Nothing here imports the IR, measurement, search or deploy stages; torch is
imported by the functions that need it, not when this package is imported.
"""
