"""Files copied into exported artifacts: the standalone ``run.py`` (no hwnas, no torch needed).

The exporter and verifier live in :mod:`hwnas.deploy.export`; this package only holds what ships.
"""
