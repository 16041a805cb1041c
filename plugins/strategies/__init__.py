"""Built-in search strategy plugins: random, NSGA-II, aging evolution and predictor-guided LINAS.

Each strategy module registers its class through ``hwnas_register_strategies``.
"""
