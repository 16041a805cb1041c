"""The measurement stage: targets, artifacts, the timing protocol, isolated workers and the measurement cache.

It compiles and times graph IRs (:mod:`hwnas.ir`); it knows nothing of
searches, which call it through objective providers.
"""
