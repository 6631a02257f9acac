"""Stratified, seeded validation split on the real ants/bees file list."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from visiontrain.data.dataset import Sample
from visiontrain.data.errors import DataError
from visiontrain.data.sources import load_image_folder
from visiontrain.data.split import stratified_split


@pytest.fixture(scope="module")
def ants_bees_train(datasets_dir: Path) -> list[Sample]:
    return load_image_folder(datasets_dir / "ants_bees").train  # 124 ants, 121 bees


def test_split_is_stratified_and_disjoint(ants_bees_train: list[Sample]) -> None:
    train, val = stratified_split(ants_bees_train, 0.2, seed=42)
    assert sorted(train + val, key=lambda s: s.path.as_posix()) == ants_bees_train
    assert not {s.path for s in train} & {s.path for s in val}
    assert sum(s.label == "ants" for s in val) == round(124 * 0.2)
    assert sum(s.label == "bees" for s in val) == round(121 * 0.2)
    assert val == sorted(val, key=lambda s: s.path.as_posix())


def test_split_depends_on_seed_only_not_on_input_order(ants_bees_train: list[Sample]) -> None:
    shuffled = list(ants_bees_train)
    random.Random(7).shuffle(shuffled)
    first = stratified_split(ants_bees_train, 0.25, seed=3)
    assert stratified_split(shuffled, 0.25, seed=3) == first
    assert stratified_split(ants_bees_train, 0.25, seed=4)[1] != first[1]


def test_split_of_one_class_does_not_move_when_another_class_grows(ants_bees_train: list[Sample]) -> None:
    ants_only = [s for s in ants_bees_train if s.label == "ants"]
    _, val_with_bees = stratified_split(ants_bees_train, 0.2, seed=42)
    _, val_without = stratified_split(ants_only, 0.2, seed=42)
    assert [s for s in val_with_bees if s.label == "ants"] == val_without


def test_every_class_keeps_an_image_on_each_side() -> None:
    samples = [Sample(Path(f"/d/{label}/{i}.jpg"), label) for label, n in (("a", 2), ("b", 3), ("c", 40)) for i in range(n)]
    for fraction in (0.01, 0.5, 0.99):
        train, val = stratified_split(samples, fraction, seed=0)
        for label in "abc":
            assert any(s.label == label for s in train) and any(s.label == label for s in val)


def test_a_class_with_one_image_is_an_error_naming_it_and_the_fix() -> None:
    samples = [Sample(Path("/d/a/1.jpg"), "a"), Sample(Path("/d/a/2.jpg"), "a"), Sample(Path("/d/b/1.jpg"), "b")]
    with pytest.raises(DataError, match=r"class 'b' has only 1 image: at least 2 .* give a validation folder"):
        stratified_split(samples, 0.2, seed=42)
    with pytest.raises(DataError, match=r"no usable images for class 'c'"):
        stratified_split(samples[:2], 0.2, seed=42, classes=["a", "c"])
    with pytest.raises(DataError, match="between 0 and 1"):
        stratified_split(samples[:2], 1.0, seed=42)
