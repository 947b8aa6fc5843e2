"""fer: facial-expression recognition by global and ROI features fused CNN, reproducibly.

``fer.Predictor`` (:class:`fer.predict.Predictor`) predicts on new pictures with trained models;
it is imported on first use, so ``import fer`` stays light.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "Predictor":
        from fer.predict import Predictor

        return Predictor
    raise AttributeError(f"module 'fer' has no attribute {name!r}")
