"""What every fer model shares: its sizes, its registry name and the one ``forward`` signature."""

from __future__ import annotations

import torch
from torch import nn


class FerModel(nn.Module):
    """Base of the registered models. ``forward(face, eye=None, nose=None, mouth=None)`` takes
    the normalised face (B×3×F×F) and, when ``uses_rois``, the three ROI crops (B×3×R×R); the
    subclass's :meth:`classify` computes the logits. ``class_head`` names the state_dict prefixes
    of the classifier (not copied when fine-tuning on other classes)."""

    arch = ""
    uses_rois = False
    class_head: tuple[str, ...] = ()

    def __init__(self, num_classes: int, face_size: int, roi_size: int) -> None:
        super().__init__()
        self.num_classes, self.face_size, self.roi_size = num_classes, face_size, roi_size

    def forward(self, face: torch.Tensor, eye=None, nose=None, mouth=None):
        """The model's output for ``face`` (and the ROI crops, which a ROI model requires)."""
        if not self.uses_rois:
            return self.classify(face)
        if eye is None or nose is None or mouth is None:
            raise ValueError(f"the {self.arch} model needs the eye, nose and mouth tensors")
        return self.classify(face, eye, nose, mouth)

    def classify(self, face: torch.Tensor, *rois: torch.Tensor):
        raise NotImplementedError
