"""How an image becomes the backbone's input: size, resize mode, normalisation.

Resolved once per run (explicit setting > the backbone's pretrained config > constant) and stored
in the checkpoint, so prediction uses exactly what training used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn


@dataclass(frozen=True)
class Preprocessing:
    image_size: int
    resize_mode: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        return cls(
            image_size=int(data["image_size"]),
            resize_mode=str(data["resize_mode"]),
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            interpolation=str(data.get("interpolation", "bicubic")),
        )

    def key(self) -> str:
        return f"{self.image_size}-{self.resize_mode}-{self.interpolation}-{self.mean}-{self.std}"


def resolve_preprocessing(backbone: nn.Module, *, image_size: int | None, resize_mode: str) -> Preprocessing:
    from timm.data import resolve_data_config

    config = resolve_data_config({}, model=backbone)
    size = image_size or int(config["input_size"][-1])
    return Preprocessing(
        image_size=size,
        resize_mode=str(getattr(resize_mode, "value", resize_mode)),
        mean=tuple(float(x) for x in config["mean"]),
        std=tuple(float(x) for x in config["std"]),
        interpolation=str(config.get("interpolation", "bicubic")),
    )
