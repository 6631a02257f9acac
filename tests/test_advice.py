""""What to try next": each rule on constructed curves, on both sides of its threshold."""

from __future__ import annotations

import math

import pytest

from visiontrain.assistant import advice as A
from visiontrain.assistant.advice import advise
from visiontrain.settings import TrainingSettings

HEALTHY_TRAIN = [0.59, 0.26, 0.16, 0.13, 0.11, 0.09]
HEALTHY_VAL = [0.40, 0.24, 0.20, 0.19, 0.18, 0.18]
HEALTHY_ACC = [0.90, 0.93, 0.95, 0.96, 0.96, 0.96]


def epochs(train, val, metric, *, stage="head", monitor="val_accuracy", lr=1e-3):
    best, rows = -1.0, []
    for i, (t, v, m) in enumerate(zip(train, val, metric)):
        rows.append({"type": "epoch", "stage": stage, "epoch": i + 1, "train_loss": t, "val_loss": v, monitor: m,
                     "monitor": monitor, "learning_rate": lr, "best": m > best})
        best = max(best, m)
    return rows


def summary(task="classification", train=None, val=None, **extra):
    train = train or {"ants": 120, "bees": 120}
    val = val or {"ants": 40, "bees": 40}
    monitor = {"classification": "val_accuracy", "tagging": "val_map", "detection": "val_map50"}[task]
    return {"status": "succeeded", "task": task, "monitor": monitor, "message": "training finished", "best_stage": "head",
            "class_counts": {"train": train, "val": val}, "counts": {"train_images": sum(train.values()), "val_images": sum(val.values())}, **extra}


def rules(report):
    return [a.rule for a in report.items]


def run(train=HEALTHY_TRAIN, val=HEALTHY_VAL, metric=HEALTHY_ACC, settings=None, evaluation=None, train_counts=None,
        val_counts=None, **summary_extra):
    """Advice on a classification run with these losses and metric per head epoch (and these image counts)."""
    settings = settings or TrainingSettings(epochs=20)
    return advise(epochs(train, val, metric), summary(train=train_counts, val=val_counts, **summary_extra), evaluation, settings)


def test_a_healthy_run_gets_no_advice_and_says_why():
    report = run()
    assert report.items == [] and "nothing stands out" in report.reason


def test_a_run_not_finished_gets_a_reason_not_advice():
    report = advise(epochs(HEALTHY_TRAIN[:2], HEALTHY_VAL[:2], HEALTHY_ACC[:2]), None, None, TrainingSettings())
    assert report.items == [] and "not finished" in report.reason


def test_a_failed_run_is_sent_to_its_error_unless_it_diverged():
    failed = advise([], {"status": "failed", "message": "image x is missing"}, None, TrainingSettings())
    assert failed.items == [] and "image x is missing" in failed.reason
    diverged = advise([], {"status": "failed", "message": "the training loss became nan for 3 steps in a row"}, None,
                      TrainingSettings(learning_rate=0.5))
    assert rules(diverged) == ["learning_rate_too_high"]
    assert diverged.items[0].changes == {"learning_rate": 0.05, "gradient_clip_norm": A.SUGGESTED_CLIP_NORM}
    assert diverged.items[0].current == {"learning_rate": 0.5, "gradient_clip_norm": 0.0}


def test_rate_too_high_when_the_loss_jumps_instead_of_falling():
    # The curve of learning rate 3 on ants/bees: training loss up, validation loss 4.5x.
    jumping = run(train=[4.73, 1.67, 5.22, 15.6], val=[11.3, 25.6, 51.3, 66.5], metric=[0.93, 0.93, 0.88, 0.87],
                  settings=TrainingSettings(learning_rate=3.0, epochs=4))
    assert rules(jumping) == ["learning_rate_too_high"]  # the curve rules after it would repeat it
    assert jumping.items[0].changes["learning_rate"] == 0.3
    assert "rose by 213% in epoch 3" in jumping.items[0].evidence

    # Validation loss doubling while the training loss does not halve: too high ...
    blowup = run(train=[0.62, 0.56, 0.49], val=[0.89, 1.5, 1.8], metric=[0.93, 0.92, 0.93], settings=TrainingSettings(epochs=3))
    assert "learning_rate_too_high" in rules(blowup) and "2.0x" in blowup.items[0].evidence
    # ... under twice, not.
    assert "learning_rate_too_high" not in rules(run(train=[0.62, 0.56, 0.49], val=[0.89, 1.7, 1.75], metric=[0.93, 0.92, 0.93]))
    # A training loss that halves is learning, however the validation loss moves (that is overfitting's sign).
    halving = run(train=[0.62, 0.40, 0.31], val=[0.19, 0.85, 0.9], metric=[0.95, 0.93, 0.93])
    assert "learning_rate_too_high" not in rules(halving)
    # A rise of 10% from one epoch to the next is unsteady; 9% is noise.
    assert "learning_rate_too_high" in rules(run(train=[0.60, 0.50, 0.5505], val=[0.5, 0.5, 0.5], metric=[0.8, 0.8, 0.8]))
    assert "learning_rate_too_high" not in rules(run(train=[0.60, 0.50, 0.545], val=[0.5, 0.5, 0.5], metric=[0.8, 0.8, 0.8]))


def test_rate_too_low_when_the_loss_creeps_and_the_metric_still_rises():
    def creeping(per_epoch, metric):
        return run(train=[0.69 * (1 - per_epoch) ** i for i in range(6)], val=[0.68] * 6, metric=metric,
                   settings=TrainingSettings(learning_rate=1e-5, epochs=6))

    rising = [0.54, 0.57, 0.60, 0.62, 0.65, 0.70]
    slow = creeping(0.045, rising)
    assert rules(slow)[0] == "learning_rate_too_low"
    assert slow.items[0].changes == {"learning_rate": 1e-4} and "4.5% per epoch" in slow.items[0].evidence
    assert "learning_rate_too_low" not in rules(creeping(0.055, rising))
    # Slow but no longer improving at the end: not the rate.
    assert "learning_rate_too_low" not in rules(creeping(0.045, [0.54, 0.57, 0.70, 0.62, 0.65, 0.70]))


def test_rate_too_high_when_the_first_validation_loss_is_far_above_a_guess():
    # Learning rate 3 on 24 images: the training loss reaches 0 (memorised) while validation is 26x a guess.
    tiny = run(train=[4.45, 9.41, 0.0, 0.0], val=[17.9, 21.6, 25.2, 28.7], metric=[0.75, 0.83, 0.83, 0.83],
               settings=TrainingSettings(learning_rate=3.0, epochs=4))
    assert rules(tiny)[0] == "learning_rate_too_high" and "26 times the 0.693 of a guess" in tiny.items[0].evidence
    assert "overfitting" not in rules(tiny)
    guess = math.log(2)
    assert "learning_rate_too_high" in rules(run(val=[3.0 * guess + 0.01, *HEALTHY_VAL[1:]]))
    assert "learning_rate_too_high" not in rules(run(val=[2.9 * guess, *HEALTHY_VAL[1:]]))


def test_a_higher_rate_stays_within_the_settings_bounds():
    report = run(train=[0.69, 0.68, 0.675, 0.67], val=[0.68] * 4, metric=[0.5, 0.55, 0.6, 0.65],
                 settings=TrainingSettings(learning_rate=5.0, epochs=4))
    assert report.items[0].rule == "learning_rate_too_low"
    assert report.items[0].changes["learning_rate"] == A._bound("learning_rate", "le") == 10.0


def test_overfitting_when_training_loss_is_far_below_a_rising_validation_loss():
    train = [0.46, 0.18, 0.08, 0.02, 0.006, 0.001]

    def with_val(last, metric=(0.95, 0.95, 0.95, 0.95, 0.95, 0.95), settings=None):
        return run(train=train, val=[0.19, 0.20, 0.21, 0.22, 0.23, last], metric=list(metric), settings=settings)

    over = with_val(0.19 * 1.25)
    assert "overfitting" in rules(over)
    item = over.items[rules(over).index("overfitting")]
    assert item.changes == {"augmented_copies": 2, "dropout": A.OVERFIT_DROPOUT}
    assert "rose 25% above its lowest" in item.evidence
    assert "overfitting" not in rules(with_val(0.19 * 1.15))  # validation loss risen only 15%
    # The metric falling two points from its best is the other sign.
    assert "overfitting" in rules(with_val(0.20, metric=(0.95, 0.96, 0.95, 0.95, 0.94, 0.935)))
    assert "overfitting" not in rules(with_val(0.20, metric=(0.95, 0.96, 0.95, 0.95, 0.95, 0.945)))
    # Dropout already high: weight decay instead.
    strong = with_val(0.3, settings=TrainingSettings(dropout=0.6, epochs=20))
    assert strong.items[rules(strong).index("overfitting")].changes == {"augmented_copies": 2, "weight_decay": 1e-3}


def test_no_overfitting_while_training_loss_stays_near_validation_loss():
    # Training loss half the validation loss is usual for a good transfer-learning run.
    report = run(train=[0.5, 0.3, 0.25, 0.22, 0.2, 0.19], val=[0.3, 0.32, 0.33, 0.35, 0.37, 0.37],
                 metric=[0.9, 0.92, 0.92, 0.92, 0.92, 0.92])
    assert "overfitting" not in rules(report)  # 0.19 / 0.37 = 51% >= 50%


def test_a_detector_is_not_offered_head_settings():
    report = advise(epochs([1.2, 0.6, 0.3, 0.1, 0.05, 0.02], [0.9, 1.0, 1.1, 1.2, 1.3, 1.4], [0.5, 0.6, 0.6, 0.6, 0.6, 0.6],
                           monitor="val_map50"), summary("detection"), None, TrainingSettings.for_task("detection", {}))
    item = report.items[rules(report).index("overfitting")]
    assert "dropout" not in item.changes and item.changes["augmented_copies"] == 3


def test_underfitting_when_the_training_loss_stays_near_a_guess():
    chance = math.log(2)  # two balanced classes

    def at(share, last=None, settings=None):
        train = [chance * f for f in (0.98, 0.8, share + 0.01, share, last or share)]
        return run(train=train, val=[0.69, 0.6, 0.55, 0.56, 0.56], metric=[0.6, 0.65, 0.66, 0.67, 0.7],
                   settings=settings or TrainingSettings(epochs=20, fine_tune=False))

    under = at(0.55)
    assert "underfitting" in rules(under)
    item = under.items[rules(under).index("underfitting")]
    assert item.changes == {"head_layers": 1, "fine_tune": True}  # its rate follows the head's (a tenth)
    # Fine-tuning already on (the default): retrain more of the backbone instead.
    tuned = at(0.55, settings=TrainingSettings(epochs=20))
    assert tuned.items[rules(tuned).index("underfitting")].changes == {"head_layers": 1, "retrained_layers": 6}
    assert "55% of the 0.693 a guess" in item.evidence
    assert "underfitting" not in rules(at(0.45))
    # Still falling fast (over 10% in the last three epochs): the run was short, not the model small.
    assert "underfitting" not in rules(at(0.62, last=0.55))
    assert "underfitting" in rules(at(0.60, last=0.55))


def test_turning_fine_tuning_on_brings_its_rate_under_a_tenth_of_the_heads():
    settings = TrainingSettings(learning_rate=5e-4, fine_tune=False, fine_tune_learning_rate=1e-4, head_layers=1)
    report = run(train=[0.69, 0.52, 0.5, 0.5], val=[0.69, 0.6, 0.55, 0.56], metric=[0.6, 0.65, 0.7, 0.7], settings=settings)
    item = report.items[rules(report).index("underfitting")]
    assert item.changes == {"fine_tune": True, "fine_tune_learning_rate": 5e-5}
    TrainingSettings(**{**settings.model_dump(), **item.changes})  # alone, fine_tune on would be refused


def test_still_improving_when_the_epochs_ran_out():
    rising = [0.80, 0.85, 0.88, 0.90, 0.91, 0.915]
    report = run(metric=rising, settings=TrainingSettings(epochs=6))
    assert rules(report) == ["still_improving"] and report.items[0].changes == {"epochs": 12}
    # A plateau (the best reached before the last epoch), a gain under min_delta, or early stopping: no.
    assert rules(run(metric=[0.8, 0.85, 0.9, 0.91, 0.915, 0.915], settings=TrainingSettings(epochs=6))) == []
    assert rules(run(metric=[0.8, 0.85, 0.9, 0.9, 0.9, 0.9009], settings=TrainingSettings(epochs=6, min_delta=0.001))) == []
    assert rules(run(metric=rising, settings=TrainingSettings(epochs=20))) == []


def test_fine_tuning_that_did_not_beat_the_head():
    records = epochs(HEALTHY_TRAIN, HEALTHY_VAL, HEALTHY_ACC) + epochs([0.1, 0.09], [0.2, 0.21], [0.95, 0.94], stage="fine_tune")
    settings = TrainingSettings(fine_tune=True)
    report = advise(records, summary(best_stage="head", timings={"fine_tune": 61.0}), None, settings)
    assert rules(report) == ["fine_tune_no_gain"] and report.items[0].changes == {"fine_tune": False}
    assert "95.0% against the head's 96.0%" in report.items[0].evidence and "61 s" in report.items[0].evidence
    assert advise(records, summary(best_stage="fine_tune"), None, settings).items == []


def test_confused_pairs_from_the_confusion_matrix():
    def evaluation(cat_as_dog):
        # rows: true cat, dog, fox; columns: predicted
        return {"classes": ["cat", "dog", "fox"], "confusion_matrix": [[40 - cat_as_dog, cat_as_dog, 0], [2, 38, 0], [0, 1, 39]]}

    confused = run(evaluation=evaluation(6), settings=TrainingSettings(epochs=20, fine_tune=False))  # 6 + 2 of 80 images: 10%
    assert rules(confused) == ["confused_pairs"]
    assert "cat and dog: 8 of 80 validation images (10%; 6 cat taken for dog, 2 the other way)" in confused.items[0].evidence
    assert confused.items[0].changes == {"fine_tune": True}
    assert rules(run(evaluation=evaluation(5))) == []  # 7 of 80: under 10%
    # Two mistakes are chance, whatever their share.
    small = {"classes": ["cat", "dog"], "confusion_matrix": [[4, 1], [1, 4]]}
    assert rules(run(evaluation=small)) == []


def test_weak_concepts_from_average_precision():
    def tagging(ap):
        per_concept = [{"concept": "cat", "ap": 0.9, "support": 30}, {"concept": "leash", "ap": ap, "support": 17}]
        return advise(epochs(HEALTHY_TRAIN, HEALTHY_VAL, HEALTHY_ACC, monitor="val_map"),
                      summary("tagging", train={"cat": 80, "leash": 40}, val={"cat": 30, "leash": 17}),
                      {"per_concept": per_concept}, TrainingSettings())

    weak = tagging(0.45)
    assert rules(weak) == ["weak_concepts"] and "leash 0.45 (17 validation images)" in weak.items[0].evidence
    assert weak.items[0].changes == {"augmented_copies": 2}  # weighting rare concepts is the imbalance rule's
    assert rules(tagging(0.55)) == []
    detector = advise(epochs(HEALTHY_TRAIN, HEALTHY_VAL, HEALTHY_ACC, monitor="val_map50"), summary("detection"),
                      {"per_class": [{"concept": "raccoon", "ap50": 0.3, "support": 44}]}, TrainingSettings.for_task("detection", {}))
    assert rules(detector) == ["weak_concepts"] and "at IoU 0.5" in detector.items[0].evidence
    assert detector.items[0].changes == {"augmented_copies": 3}


def test_imbalance_at_the_data_checks_ratio():
    def with_counts(bees, balance=False):
        evaluation = {"per_class": [{"class": "bees", "recall": 0.6, "support": 20}, {"class": "ants", "recall": 0.98, "support": 30}]}
        return run(train_counts={"ants": 90, "bees": bees}, val_counts={"ants": 30, "bees": 20}, evaluation=evaluation,
                   settings=TrainingSettings(balance_concepts=balance, epochs=20))

    imbalanced = with_counts(30)  # 3.0x
    assert rules(imbalanced) == ["imbalance"] and imbalanced.items[0].changes == {"balance_concepts": True}
    assert "bees 30 (3.0x fewer); its validation recall is 60.0%" in imbalanced.items[0].evidence
    assert rules(with_counts(31)) == []
    assert rules(with_counts(30, balance=True)) == []


def test_a_concept_without_validation_images_and_how_many_are_short():
    report = run(train_counts={"ants": 100, "bees": 100, "wasps": 10}, val_counts={"ants": 20, "bees": 12, "wasps": 0},
                 settings=TrainingSettings(balance_concepts=True, epochs=20))
    item = report.items[rules(report).index("few_validation_images")]
    assert item.evidence == ("wasps has no validation image, so its score cannot be measured (at least 15 make it "
                             "trustworthy; 2 of 3 concepts have fewer)")


def test_weak_concepts_are_named_best_supported_first():
    rows = [{"concept": "banana", "ap": 0.03, "support": 1}, {"concept": "dog", "ap": 0.4, "support": 12},
            {"concept": "car", "ap": 0.2, "support": 3}]
    report = advise(epochs(HEALTHY_TRAIN, HEALTHY_VAL, HEALTHY_ACC, monitor="val_map"),
                    summary("tagging", train={"dog": 40, "car": 30, "banana": 20}, val={"dog": 20, "car": 20, "banana": 20}),
                    {"per_concept": rows}, TrainingSettings())
    assert "below 0.5: dog 0.40 (12 validation images), car 0.20 (3 validation images), banana 0.03 (1 validation image)" \
        in report.items[0].evidence


def test_too_few_validation_images():
    def with_val(ants, split=0.1, train=(126, 270), bees=30):
        # train + validation: 440 images, 10% of them validation (the run's own split of 0.1)
        return run(train_counts={"ants": train[0], "bees": train[1]}, val_counts={"ants": ants, "bees": bees},
                   settings=TrainingSettings(validation_split=split, epochs=20))

    few = with_val(14)
    assert rules(few) == ["few_validation_images"]
    assert "ants has 14 validation images: one image moves its score by 7 points (at least 15" in few.items[0].evidence
    assert few.items[0].changes == {"validation_split": 0.15}  # 15 of 140 ants, in steps of 0.05
    assert rules(with_val(15, train=(125, 270))) == []
    # A given validation set (its share is not the setting's): add images to it; the split does not apply.
    given = with_val(14, split=0.3)
    assert rules(given) == ["few_validation_images"] and given.items[0].changes == {} and "were given" in given.items[0].why
    # A split that would leave under 20 images to train on: the advice is more images, no setting.
    tiny = run(train_counts={"ants": 20, "bees": 20}, val_counts={"ants": 5, "bees": 5}, settings=TrainingSettings(validation_split=0.2, epochs=20))
    assert rules(tiny) == ["few_validation_images"] and tiny.items[0].changes == {} and "annotate more" in tiny.items[0].why


@pytest.mark.parametrize("case", ["too_high", "too_low", "overfit", "under", "confused", "imbalance", "few_val"])
def test_every_suggestion_is_valid_settings_and_json(case):
    import json

    cases = {
        "too_high": dict(train=[4.7, 1.7, 5.2], val=[11.0, 25.0, 51.0], metric=[0.9, 0.9, 0.9],
                         settings=TrainingSettings(learning_rate=2.0, fine_tune=True, fine_tune_learning_rate=0.2)),
        "too_low": dict(train=[0.69, 0.68, 0.67, 0.66], val=[0.68] * 4, metric=[0.5, 0.55, 0.6, 0.65],
                        settings=TrainingSettings(learning_rate=1e-5, fine_tune=True, fine_tune_learning_rate=1e-6, epochs=4)),
        "overfit": dict(train=[0.4, 0.1, 0.01], val=[0.2, 0.3, 0.4], metric=[0.9, 0.88, 0.85],
                        settings=TrainingSettings(augmented_copies=4, dropout=0.9, weight_decay=0.5)),
        "under": dict(train=[0.69, 0.52, 0.5, 0.5], val=[0.69, 0.6, 0.55, 0.55], metric=[0.6, 0.65, 0.66, 0.66],
                      settings=TrainingSettings(head_layers=4, fine_tune=True, retrained_layers=50)),
        "confused": dict(evaluation={"classes": ["a", "b"], "confusion_matrix": [[30, 10], [10, 30]]},
                         settings=TrainingSettings(fine_tune=True, retrained_layers=49)),
        "imbalance": dict(train_counts={"ants": 300, "bees": 10}),
        "few_val": dict(train_counts={"ants": 200, "bees": 200}, val_counts={"ants": 8, "bees": 92},
                        settings=TrainingSettings(validation_split=0.2)),
    }
    report = run(**cases[case])
    assert report.items, report.reason
    settings = cases[case].get("settings") or TrainingSettings(epochs=20)
    if case == "under":
        assert report.items[0].changes == {"backbone": "efficientnet_lite1"}  # head and fine-tuning at their most
    for item in report.items:
        merged = {**settings.model_dump(), **item.changes}
        TrainingSettings(**merged)  # valid together
        assert all(item.current[k] != v for k, v in item.changes.items())
    json.dumps(report.to_dict())


def test_a_rate_found_by_auto_is_judged_by_what_the_run_used():
    if "auto" not in str(TrainingSettings.model_fields["learning_rate"].annotation):
        pytest.skip("learning_rate: auto is not a setting in this tree")
    records = epochs([4.73, 1.67, 5.22, 15.6], [11.3, 25.6, 51.3, 66.5], [0.93, 0.93, 0.88, 0.87], lr=2.0)
    report = advise(records, summary(), None, TrainingSettings(learning_rate="auto", fine_tune=True, epochs=4))
    item = report.items[0]
    assert item.rule == "learning_rate_too_high" and "learning rate 2 (found by learning_rate: auto)" in item.evidence
    assert item.changes == {"learning_rate": 0.2, "gradient_clip_norm": 1.0}


def test_settings_may_come_as_a_stored_dict():
    stored = TrainingSettings(learning_rate=3.0, epochs=4).model_dump(mode="json")
    report = advise(epochs([4.73, 1.67, 5.22, 15.6], [11.3, 25.6, 51.3, 66.5], [0.93, 0.93, 0.88, 0.87]), summary(), None, stored)
    assert rules(report) == ["learning_rate_too_high"]
    broken = advise([], summary(), None, {**stored, "no_such_setting": 1})
    assert broken.items == [] and "no longer valid" in broken.reason
