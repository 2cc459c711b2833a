"""Reading `predict` records the way the training images were read: RGB, uint8, the model's square input size.

A record is an image in any form `shared.images.decode_image` reads (a file, bytes, base64, pixels), of any size
and mode (RGBA, grey, palette, 16-bit). A non-square image is centre-cropped to a square, then resized to the
data's `image_size` (32 for CIFAR-10) and quantised to 8 bits: `projects.vision.archives.to_model_input`,
which converts the images of a training folder too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from projects.vision.archives import to_model_input
from shared.errors import RecordError
from shared.images import decode_image


def parse_image(payload: Any, size: int) -> np.ndarray:
    """One record as a size×size×3 uint8 image: an image `decode_image` reads, or `{"image": ...}`."""
    if isinstance(payload, dict):
        if "image" not in payload:
            raise RecordError("an image record needs an 'image' field (base64 PNG/JPEG, or an H×W×3 array of pixels)")
        payload = payload["image"]
    return to_model_input(decode_image(payload, "RGB"), size)


def stack_images(images: list[np.ndarray]) -> torch.Tensor:
    """H×W×3 uint8 images as the N×3×H×W uint8 tensor the models take."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
