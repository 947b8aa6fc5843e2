"""Contact sheet: a grid of aligned chips with their eye / nose / mouth boxes drawn, so a person
can check at a glance that the crops sit where they should."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fer.contracts import EXCLUDED
from fer.preprocess.rois import parse_boxes

BOX_COLOURS = ((255, 40, 40), (40, 220, 40), (60, 120, 255))  # eye red, nose green, mouth blue
STATUS_COLOURS = {
    "ok": (255, 255, 255),
    "no_face": (255, 200, 0),
    "landmarks_failed": (255, 120, 0),
    "roi_empty": (255, 0, 255),
    "unreadable": (128, 128, 128),
    "rejected": (128, 128, 128),
}


def sample_rows(statuses: list[str], n: int) -> list[int]:
    """Up to ``n`` row numbers spread evenly over the usable rows (deterministic)."""
    readable = [i for i, s in enumerate(statuses) if s not in EXCLUDED]
    if n <= 0 or not readable:
        return []
    if len(readable) <= n:
        return readable
    picks = np.linspace(0, len(readable) - 1, n).round().astype(int)
    return [readable[i] for i in picks]


def contact_sheet(
    faces: np.ndarray,
    roi_boxes: list[str],
    statuses: list[str],
    rows: list[int],
    tile: int = 112,
    columns: int = 8,
) -> Image.Image:
    """Render ``rows`` of ``faces`` (N×F×F×3) as a grid of ``tile``-px thumbnails with the ROI boxes
    (``roi_boxes[i]`` as in index.csv) drawn and a status-coloured frame."""
    columns = max(1, min(columns, len(rows) or 1))
    n_rows = max(1, -(-len(rows) // columns))
    sheet = Image.new("RGB", (columns * tile, n_rows * tile), (24, 24, 24))
    for k, i in enumerate(rows):
        chip = Image.fromarray(np.asarray(faces[i]))
        scale = tile / chip.width
        thumb = chip.resize((tile, tile), Image.Resampling.BILINEAR)
        draw = ImageDraw.Draw(thumb)
        for colour, box in zip(BOX_COLOURS, parse_boxes(roi_boxes[i]) or [], strict=False):
            x1, y1, x2, y2 = (v * scale for v in box)
            draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=colour, width=2)
        draw.rectangle([0, 0, tile - 1, tile - 1], outline=STATUS_COLOURS.get(statuses[i]), width=1)
        if statuses[i] != "ok":
            draw.text((3, tile - 12), statuses[i], fill=STATUS_COLOURS.get(statuses[i]))
        sheet.paste(thumb, ((k % columns) * tile, (k // columns) * tile))
    return sheet


def write_contact_sheet(
    path: str | Path, faces: np.ndarray, roi_boxes: list[str], statuses: list[str], n: int = 48
) -> Path:
    """Write the contact sheet of ``n`` evenly spread images to ``path`` (PNG)."""
    path = Path(path)
    sheet = contact_sheet(faces, roi_boxes, statuses, sample_rows(statuses, n))
    sheet.save(path, format="PNG", optimize=True)
    return path
