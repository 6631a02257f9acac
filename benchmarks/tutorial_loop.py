"""Baseline for benchmark (a): the usual transfer-learning tutorial loop, as a whole process.

PyTorch's "ConvNet as fixed feature extractor" recipe with the same offline backbone (frozen
EfficientNet-Lite0, channels_last, inference mode for the backbone), a linear head trained with
SGD on freshly augmented images every epoch, validated after each epoch. Stops at the first epoch
whose validation accuracy reaches --target (or after --max-epochs) and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

START = time.perf_counter()

import timm  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torchvision import datasets, transforms  # noqa: E402

from visiontrain.models.backbones import create_backbone  # noqa: E402  (same offline weights as ours)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", help="ImageFolder root with train/ and val/")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--max-epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    normalize = transforms.Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    train_tf = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.ToTensor(), normalize])
    val_tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), normalize])
    train_set = datasets.ImageFolder(f"{args.data}/train", train_tf)
    val_set = datasets.ImageFolder(f"{args.data}/val", val_tf)
    train_loader = DataLoader(train_set, batch_size=4, shuffle=True, num_workers=args.workers)
    val_loader = DataLoader(val_set, batch_size=32, num_workers=args.workers)

    backbone = create_backbone("efficientnet_lite0").eval().to(memory_format=torch.channels_last)
    head = torch.nn.Linear(backbone.num_features, len(train_set.classes))
    optimizer = torch.optim.SGD(head.parameters(), lr=0.001, momentum=0.9)
    accuracy, epoch = 0.0, 0
    for epoch in range(1, args.max_epochs + 1):
        head.train()
        for images, labels in train_loader:
            with torch.inference_mode():
                features = backbone(images.contiguous(memory_format=torch.channels_last))
            loss = torch.nn.functional.cross_entropy(head(features.clone()), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        head.eval()
        correct = 0
        with torch.inference_mode():
            for images, labels in val_loader:
                correct += (head(backbone(images.contiguous(memory_format=torch.channels_last))).argmax(1) == labels).sum().item()
        accuracy = correct / len(val_set)
        if accuracy >= args.target:
            break
    print(json.dumps({"val_accuracy": accuracy, "epochs": epoch, "seconds": time.perf_counter() - START}))


if __name__ == "__main__":
    main()
