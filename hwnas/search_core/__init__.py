"""The search stage: objectives, evaluator, executors, strategy and predictor bases, the loop and the run store.

``hwnas.search`` (the function) lives in :mod:`hwnas.search_core.api`; this
package is named ``search_core`` so that the function keeps the short name.
"""
