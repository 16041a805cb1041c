"""Built-in predictor plugins: scikit-learn regressors and the per-kernel latency lookup table.

Each predictor module registers its classes through ``hwnas_register_predictors``.
"""
