"""fer: facial-expression recognition by global and ROI features fused CNN, reproducibly."""

__version__ = "0.1.0"
