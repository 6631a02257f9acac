"""Settings suggested from the data: each rule at its boundaries, on both sides; a fixed validation set is
left untouched and reported with its real counts; every suggestion is valid settings for its task."""

from __future__ import annotations

from pathlib import Path

import pytest

from visiontrain.assistant import DataCounts, SplitCounts, count_split, counts_from_spec, estimated_counts, suggest_settings
from visiontrain.data.checks import IMBALANCE_RATIO, MIN_TRAINING_IMAGES_PER_CONCEPT, MIN_VALIDATION_IMAGES_PER_CONCEPT
from visiontrain.data.errors import DataError
from visiontrain.settings import TrainingSettings


def fixed(train: dict[str, int], val: dict[str, int] | None = None, *, task: str = "classification", without: int = 0) -> DataCounts:
    """A validation set given as it is: these counts, whatever the fraction."""
    val = val if val is not None else {c: 20 for c in train}
    counts = SplitCounts(train, val, sum(train.values()) + without, sum(val.values()), train_without_concept=without)
    return DataCounts(task, tuple(train), lambda _fraction: counts, fixed="the validation set given")


def two(n_train: int, other: int | None = None, **kwargs) -> DataCounts:
    return fixed({"ants": n_train, "bees": n_train if other is None else other}, **kwargs)


@pytest.mark.parametrize(("smallest", "fraction"), [(30, 0.4), (37, 0.4), (38, 0.4), (40, 0.4), (43, 0.35), (50, 0.3),
                                                    (60, 0.25), (75, 0.2), (100, 0.15), (149, 0.15), (150, 0.1), (2000, 0.1)])
def test_the_split_holds_out_15_images_of_the_smallest_concept_between_10_and_40_percent(smallest, fraction):
    s = suggest_settings(estimated_counts("classification", {"ants": smallest, "bees": 3000}))
    assert s.settings["validation_split"] == pytest.approx(fraction)
    held = s.counts["validation"]["ants"]
    assert (held >= MIN_VALIDATION_IMAGES_PER_CONCEPT) == (smallest * 0.4 >= 14.5)
    assert ("the most held out" in s.reasons["validation_split"]) == (held < MIN_VALIDATION_IMAGES_PER_CONCEPT)


def test_a_fixed_validation_set_is_untouched_and_its_real_counts_reported():
    s = suggest_settings(fixed({"ants": 124, "bees": 121}, {"ants": 70, "bees": 83}), {"validation_split": 0.3})
    assert "validation_split" not in s.settings
    assert s.kept["validation_split"].startswith("untouched: the validation set given holds 153 image(s) for validation")
    assert s.counts["train"] == {"ants": 124, "bees": 121} and s.counts["validation"] == {"ants": 70, "bees": 83}
    assert s.counts["validation_set"] == "the validation set given"


def test_a_dataset_with_its_own_validation_folder_is_counted_as_it_is(datasets_dir: Path):
    from visiontrain.data.sources import load_dataset

    spec = load_dataset(datasets_dir / "ants_bees")
    s = suggest_settings(counts_from_spec(spec, seed=42))
    assert s.counts["train"] == spec.class_counts(spec.train) and s.counts["validation"] == spec.class_counts(spec.val)
    assert "validation_split" not in s.settings and "validation_split" in s.kept


def test_without_a_validation_set_the_counts_are_the_tasks_real_split_at_the_suggested_fraction(datasets_dir: Path):
    from visiontrain.data.sources import load_dataset
    from visiontrain.tasks import get_task

    spec = load_dataset(datasets_dir / "ants_bees" / "val")  # 70 ants, 83 bees, no validation set of its own
    s = suggest_settings(counts_from_spec(spec, seed=7))
    fraction = s.settings["validation_split"]
    assert fraction == pytest.approx(0.25)  # 15 / 70 rounded up to a step of 5%
    train, val, _ = get_task("classification").split(spec.train, fraction, 7, spec.classes)
    assert s.counts["train"] == spec.class_counts(train) and s.counts["validation"] == spec.class_counts(val)
    assert s.counts["train_images"] == len(train) and s.counts["validation_images"] == len(val)


@pytest.mark.parametrize(("train_images", "batch"), [(40, 8), (99, 8), (100, 16), (200, 16), (299, 16), (300, 32),
                                                     (999, 32), (1000, 64), (8000, 64)])
def test_batch_size_follows_the_training_images(train_images, batch):
    s = suggest_settings(fixed({"ants": train_images // 2, "bees": train_images - train_images // 2}))
    assert s.settings["batch_size"] == batch
    assert f"{train_images} training images" in s.reasons["batch_size"]


def test_detection_keeps_its_own_batches_and_epochs():
    s = suggest_settings(fixed({"raccoon": 160}, {"raccoon": 40}, task="detection", without=5))
    assert "batch_size" not in s.settings and "epochs" not in s.settings
    assert "detection's own: 4" in s.kept["batch_size"]
    assert any("5 training image(s) without boxes" in w for w in s.warnings)
    assert s.settings["augmented_copies"] == 2  # detection's default number of copies: augmentation on


@pytest.mark.parametrize(("smallest", "layers"), [(30, 4), (299, 4), (300, 4), (999, 4), (1000, 8), (5000, 8)])
def test_fine_tuning_and_its_layers_follow_the_images_per_concept(smallest, layers):
    s = suggest_settings(two(smallest, smallest + 10), {"learning_rate": 5e-4})
    assert s.settings["fine_tune"] is True
    assert s.settings["retrained_layers"] == layers
    assert "fine_tune_learning_rate" not in s.settings  # left empty: a tenth of the head's rate
    if smallest < 300:  # small data: only the default blocks, and why it is safe
        assert f"{smallest} training images of 'ants' (under 300)" in s.reasons["fine_tune"]
        assert "kept only if it beats the head" in s.reasons["fine_tune"]


def test_a_small_detection_set_is_not_fine_tuned():
    s = suggest_settings(fixed({"raccoon": 299}, task="detection"))
    assert s.settings["fine_tune"] is False and "(under 300)" in s.reasons["fine_tune"]


def test_a_detector_retrains_its_own_default_blocks_then_twice_as_many():
    assert suggest_settings(fixed({"raccoon": 300}, task="detection")).settings["retrained_layers"] == 3
    assert suggest_settings(fixed({"raccoon": 1000}, task="detection")).settings["retrained_layers"] == 6


@pytest.mark.parametrize("n", [MIN_TRAINING_IMAGES_PER_CONCEPT - 1, MIN_TRAINING_IMAGES_PER_CONCEPT])
def test_few_training_images_are_warned_below_the_data_checks_threshold(n):
    s = suggest_settings(two(n, 25))
    warned = [w for w in s.warnings if "training images for" in w]
    assert bool(warned) == (n < MIN_TRAINING_IMAGES_PER_CONCEPT)
    if warned:
        assert f"'ants' {n}" in warned[0] and "'bees'" not in warned[0]


@pytest.mark.parametrize("n", [MIN_VALIDATION_IMAGES_PER_CONCEPT - 1, MIN_VALIDATION_IMAGES_PER_CONCEPT])
def test_few_validation_images_are_warned_below_the_data_checks_threshold(n):
    s = suggest_settings(fixed({"ants": 50, "bees": 50}, {"ants": n, "bees": 40}))
    warned = [w for w in s.warnings if "validation images for" in w]
    assert bool(warned) == (n < MIN_VALIDATION_IMAGES_PER_CONCEPT)
    if warned:
        assert f"'ants' {n}" in warned[0] and "add validation images" in warned[0]


@pytest.mark.parametrize(("rare", "balanced"), [(21, False), (20, True)])
def test_imbalance_from_3x_offers_balance_concepts(rare, balanced):
    assert IMBALANCE_RATIO == 3.0
    s = suggest_settings(two(60, rare))
    assert s.settings.get("balance_concepts", False) is balanced
    assert any("imbalanced" in w for w in s.warnings) is balanced
    if balanced:
        assert "'ants' has 3.0x the training images of 'bees'" in s.reasons["balance_concepts"]
    detector = suggest_settings(fixed({"raccoon": 60, "dog": rare}, task="detection"))
    assert "balance_concepts" not in detector.settings  # a detector has no such loss
    assert any("imbalanced" in w for w in detector.warnings) is balanced


def test_augmentation_is_on_even_when_it_was_off():
    s = suggest_settings(two(100), {"augmented_copies": 0})
    assert s.settings["augmented_copies"] == TrainingSettings().augmented_copies
    assert s.reasons["augmented_copies"].startswith("augmentation on")
    assert suggest_settings(two(100), {"augmented_copies": 3}).settings["augmented_copies"] == 3  # more is kept


def test_questions_name_the_settings_each_answer_sets_and_which_answer_holds_now():
    s = suggest_settings(two(100), {"horizontal_flip": False})
    questions = {q["setting"]: q for q in s.questions}
    assert set(questions) == {"horizontal_flip", "color", "vertical_flip"}
    flip = questions["horizontal_flip"]
    assert flip["question"] == "Does left or right matter in your images?"
    assert {a["answer"]: a["settings"] for a in flip["answers"]} == {
        "yes, left and right matter": {"horizontal_flip": False}, "no, a mirror image shows the same thing": {"horizontal_flip": True}}
    assert flip["current"] == "yes, left and right matter"
    colour = {a["answer"]: a["settings"] for a in questions["color"]["answers"]}
    assert colour["yes, colour matters"] == {"color": 0.0} and colour["no, shape and texture do"] == {"color": TrainingSettings().color}
    for question in s.questions:
        for answer in question["answers"]:
            TrainingSettings.for_task("classification", {**s.settings, **answer["settings"]})


@pytest.mark.parametrize("task", ["classification", "tagging", "detection"])
@pytest.mark.parametrize("per_concept", [3, 40, 150, 400, 1500])
def test_every_suggestion_is_valid_settings_for_its_task(task, per_concept):
    concepts = {"raccoon": per_concept} if task == "detection" else {"cat": per_concept, "dog": per_concept * 2}
    s = suggest_settings(estimated_counts(task, concepts, without_concept=4), {"learning_rate": 0.02})
    settings = TrainingSettings.for_task(task, {"learning_rate": 0.02, **s.settings})
    assert set(s.reasons) == set(s.settings)
    assert settings.augmented_copies >= 1


def test_tagging_counts_images_per_concept_and_images_without_concept(tmp_path: Path):
    from visiontrain.data.dataset import Sample

    samples = [Sample(tmp_path / f"{i}.jpg", labels) for i, labels in enumerate([("cat",), ("cat", "dog"), (), ("dog",), ()])]
    counts = count_split(["cat", "dog"], samples[:3], samples[3:], task="tagging")
    assert counts.train == {"cat": 2, "dog": 1} and counts.val == {"cat": 0, "dog": 1}
    assert (counts.train_without_concept, counts.val_without_concept) == (1, 1)
    assert (counts.train_images, counts.val_images) == (3, 2)


def test_too_few_concepts_with_images_is_refused_by_name():
    with pytest.raises(DataError, match="at least 2 concept"):
        suggest_settings(estimated_counts("classification", {"raccoon": 200, "empty": 0}))
    with pytest.raises(DataError, match="images with boxes of at least 1 concept"):
        suggest_settings(estimated_counts("detection", {"raccoon": 0}))
    suggest_settings(estimated_counts("tagging", {"raccoon": 40}))  # a tagger may learn one concept


@pytest.mark.parametrize(("per_concept", "backbone"), [(100, "efficientnet_lite2"), (3000, "efficientnet_lite0")])
def test_the_larger_backbone_when_its_extra_feature_time_fits_the_budget(per_concept, backbone):
    from visiontrain.assistant.suggest import FEATURE_IMAGES_PER_S, LARGER_BACKBONE_BUDGET_S

    s = suggest_settings(two(per_concept))
    passes = 2 * per_concept * 2 + 2 * 20  # two concepts, one augmented copy each, 20 validation images each
    extra = passes / FEATURE_IMAGES_PER_S["efficientnet_lite2"] - passes / FEATURE_IMAGES_PER_S["efficientnet_lite0"]
    if backbone == "efficientnet_lite0":
        assert "backbone" not in s.settings and "efficientnet_lite2 would add" in s.kept["backbone"]
        assert extra > LARGER_BACKBONE_BUDGET_S
    else:
        assert s.settings["backbone"] == backbone and extra <= LARGER_BACKBONE_BUDGET_S
        assert f"{passes} images" in s.reasons["backbone"]


def test_the_budget_boundary_and_a_chosen_backbone_is_left_alone():
    from visiontrain.assistant.suggest import FEATURE_IMAGES_PER_S, LARGER_BACKBONE_BUDGET_S

    def extra(n):  # two concepts of n training images, one copy each, 20 validation images each
        passes = 4 * n + 40
        return passes / FEATURE_IMAGES_PER_S["efficientnet_lite2"] - passes / FEATURE_IMAGES_PER_S["efficientnet_lite0"]

    last = max(n for n in range(10, 5000) if extra(n) <= LARGER_BACKBONE_BUDGET_S)
    assert suggest_settings(two(last)).settings["backbone"] == "efficientnet_lite2"
    assert "backbone" not in suggest_settings(two(last + 1)).settings
    assert "backbone" not in suggest_settings(two(100), {"backbone": "efficientnet_lite0"}).settings
