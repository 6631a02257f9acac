"""The model's input: the same pixels as torchvision's own tensor steps, made without PyTorch's threads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from visiontrain.data.transforms import model_input, resizer
from visiontrain.models.preprocessing import Preprocessing

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.mark.parametrize("resize_mode", ["center_crop", "letterbox", "stretch"])
def test_model_input_equals_torchvision_to_tensor_to_dtype_normalize(datasets_dir: Path, resize_mode: str) -> None:
    preprocessing = Preprocessing(image_size=96, resize_mode=resize_mode, mean=MEAN, std=STD)
    reference = v2.Compose([resizer(preprocessing), v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize(mean=list(MEAN), std=list(STD))])
    transform = model_input(preprocessing)
    photos = sorted((datasets_dir / "ants_bees" / "train").glob("*/*.jpg"))[:6]
    for path in photos:
        image = Image.open(path).convert("RGB")
        expected, got = reference(image), transform(image)
        assert got.shape == expected.shape == (3, 96, 96)
        assert got.dtype == torch.float32 and got.is_contiguous()
        assert torch.allclose(got, expected, atol=1e-6), path.name
        assert got.std() > 0.1  # a real photo, not a constant


def test_model_input_refuses_an_image_that_is_not_rgb(datasets_dir: Path) -> None:
    path = next((datasets_dir / "ants_bees" / "train").glob("*/*.jpg"))
    transform = model_input(Preprocessing(image_size=64, resize_mode="stretch", mean=MEAN, std=STD))
    with pytest.raises(ValueError, match="RGB"):
        transform(Image.open(path).convert("L"))
