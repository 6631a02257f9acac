"""One validation split per view, so that every version of every model on it is judged on the same images.

The view keeps its split: a fraction and a seed, and for each annotated image the side it was given
(``ViewImage.assigned_split``). The first version (or an explicit re-split) makes it, stratified by
class (classification) or by concept (tagging, detection: an image's set of concepts; iterative
stratification); later versions extend it to newly annotated images without moving any image
already placed. Sides the user fixed (``ViewImage.split``) are respected and counted in the
stratification. Only :func:`resplit` moves images, and it says so (the view's ``split_generation``
goes up; versions record the generation they were judged on).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from visiontrain.data.dataset import Sample
from visiontrain.data.split import extend_split
from visiontrain.services.errors import InvalidInput
from visiontrain.settings import TrainingSettings
from visiontrain.store.base import Split, ViewKind
from visiontrain.store.models import Annotation, Concept, Image, View, ViewImage


@dataclass(frozen=True)
class SplitImage:
    """What the split, the snapshot and the export need of an image (read as plain columns: loading
    100,000 ORM objects took most of a split's time)."""

    id: int
    sha256: str
    blob_key: str
    original_name: str
    width: int
    height: int


@dataclass
class SplitEntry:
    """One annotated image of the view: its concepts (all of the view's), fixed side and split side.

    ``stored``: the side the view's split had given it when it was read (``ViewImage.assigned_split``).
    """

    image: SplitImage
    labels: tuple[str, ...]
    fixed: str | None
    assigned: str | None
    stored: str | None = None

    @property
    def side(self) -> str:
        """Where it goes when the user fixed no validation images: the fixed side, else the split's."""
        return self.fixed or self.assigned or Split.train.value


@dataclass
class SplitState:
    fraction: float
    seed: int
    generation: int
    made: bool  # False: the view has no stored split yet (this is what the first version would make)
    entries: list[SplitEntry] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    placed: int = 0  # images given a side by this call

    def summary(self, view: View) -> dict[str, Any]:
        """What the API shows: counts per side (fixed or by the split) and per concept, and warnings."""
        counts = {"train": 0, "val": 0, "test": 0, "fixed_train": 0, "fixed_val": 0, "fixed_test": 0}
        per_concept: dict[str, dict[str, int]] = {c.name: {"train": 0, "val": 0, "test": 0} for c in view.concepts}
        fixed_val = any(e.fixed == Split.val for e in self.entries)
        for entry in self.entries:
            side = entry.fixed or (Split.train.value if fixed_val else entry.assigned) or Split.train.value
            counts[side] += 1
            if entry.fixed:
                counts[f"fixed_{entry.fixed}"] += 1
            for label in entry.labels:
                per_concept.setdefault(label, {"train": 0, "val": 0, "test": 0})[side] += 1
        return {
            "validation_split": self.fraction,
            "seed": self.seed,
            "generation": self.generation,
            "made": self.made,
            "images": len(self.entries),
            **counts,
            "fixed_validation_only": fixed_val,
            "concepts": per_concept,
            "warnings": self.warnings,
        }


def _entries(session: Session, view: View) -> list[SplitEntry]:
    rows = session.execute(
        select(Image.id, Image.sha256, Image.blob_key, Image.original_name, Image.width, Image.height,
               ViewImage.split, ViewImage.assigned_split)
        .join(ViewImage, ViewImage.image_id == Image.id)
        .where(ViewImage.view_id == view.id, ViewImage.annotated.is_(True))
        .order_by(Image.id)
    ).all()
    names = dict(session.execute(select(Concept.id, Concept.name).where(Concept.view_id == view.id)).all())
    labels: dict[int, list[str]] = defaultdict(list)
    for image_id, concept_id in session.execute(
        select(Annotation.image_id, Annotation.concept_id).where(Annotation.view_id == view.id).order_by(Annotation.id)
    ):
        name = names.get(concept_id)
        if name is not None and name not in labels[image_id]:
            labels[image_id].append(name)
    return [
        SplitEntry(image=SplitImage(image_id, sha256, blob_key, original_name, width, height),
                   labels=tuple(labels.get(image_id, ())), fixed=fixed, assigned=assigned, stored=assigned)
        for image_id, sha256, blob_key, original_name, width, height, fixed, assigned in rows
    ]


# Image ids per UPDATE: well under SQLite's 32,766 bound parameters.
_UPDATE_CHUNK = 10_000


def _store_sides(session: Session, view: View, entries: list[SplitEntry]) -> None:
    """Store the sides given now, one UPDATE per side and chunk (not one per image); a side already
    stored (by another request in between) is never overwritten."""
    new: dict[str, list[int]] = defaultdict(list)
    for entry in entries:
        if entry.fixed is None and entry.stored is None and entry.assigned is not None:
            new[entry.assigned].append(entry.image.id)
            entry.stored = entry.assigned
    stored = 0
    for side, image_ids in new.items():
        for start in range(0, len(image_ids), _UPDATE_CHUNK):
            stored += session.execute(
                update(ViewImage)
                .where(ViewImage.view_id == view.id, ViewImage.image_id.in_(image_ids[start:start + _UPDATE_CHUNK]),
                       ViewImage.assigned_split.is_(None))
                .values(assigned_split=side),
                execution_options={"synchronize_session": False},
            ).rowcount
    if stored < sum(len(ids) for ids in new.values()):
        # Another request stored some of these sides first: theirs stand, and this caller must use them.
        entry_of = {entry.image.id: entry for entry in entries}
        for ids in new.values():
            for start in range(0, len(ids), _UPDATE_CHUNK):
                for image_id, side in session.execute(
                    select(ViewImage.image_id, ViewImage.assigned_split)
                    .where(ViewImage.view_id == view.id, ViewImage.image_id.in_(ids[start:start + _UPDATE_CHUNK]))
                ):
                    entry = entry_of[image_id]
                    entry.assigned = entry.stored = side
    # Rows of this view already loaded in the session would still show no side.
    for row in session.identity_map.values():
        if isinstance(row, ViewImage) and row.view_id == view.id and row.assigned_split is None:
            session.expire(row, ["assigned_split"])


def _key(image: SplitImage) -> str:
    return image.sha256  # content-addressed: the same photo keeps its place in the seeded order


def split_state(
    session: Session, *, view: View, persist: bool, fraction: float | None = None, seed: int | None = None
) -> SplitState:
    """The view's split with every annotated image placed.

    ``persist``: store the sides given to new images (and, on a view without a split yet, the
    fraction and seed: ``fraction``/``seed`` or the settings' defaults). Otherwise nothing is
    written: it is what the next version would train on.
    """
    defaults = TrainingSettings()
    made = view.split_fraction is not None
    use_fraction = view.split_fraction if made else (fraction if fraction is not None else defaults.validation_split)
    use_seed = view.split_seed if made and view.split_seed is not None else (seed if seed is not None else defaults.seed)
    entries = _entries(session, view)
    kind = ViewKind(view.kind)
    # Held-out test images (fixed by the user or an import) are never part of the validation split.
    in_split = [e for e in entries if e.fixed != Split.test]
    samples = [Sample(Path(_key(e.image)), e.labels) for e in in_split]
    # Kept: the sides the user fixed and the sides the split gave before; the others are placed now.
    assigned = {_key(e.image): e.fixed or e.assigned for e in in_split if e.fixed or e.assigned}
    if kind == ViewKind.classification:
        usable = [s for s in samples if len(s.labels) == 1]
        train, val, warnings = extend_split(usable, assigned, use_fraction, use_seed)
    else:
        train, val, warnings = extend_split(
            samples, assigned, use_fraction, use_seed, classes=[c.name for c in view.concepts], multilabel=True
        )
    side = {s.path.as_posix(): Split.train.value for s in train} | {s.path.as_posix(): Split.val.value for s in val}
    placed = 0
    for entry in entries:
        if entry.fixed is None and entry.assigned is None and _key(entry.image) in side:
            entry.assigned = side[_key(entry.image)]
            placed += 1
    if persist:
        if not made:
            view.split_fraction, view.split_seed = use_fraction, use_seed
        session.flush()
        _store_sides(session, view, entries)
    return SplitState(
        fraction=use_fraction, seed=use_seed, generation=view.split_generation or 0, made=made or persist,
        entries=entries, warnings=warnings, placed=placed,
    )


def resplit(session: Session, *, view: View, fraction: float | None = None, seed: int | None = None) -> SplitState:
    """Split the view's images afresh (the only way images move): new fraction and seed if given."""
    if fraction is not None and not 0.0 < fraction < 1.0:
        raise InvalidInput(f"validation_split must be between 0 and 1 (exclusive), got {fraction}", loc=("body", "validation_split"))
    if seed is not None and seed < 0:
        raise InvalidInput(f"seed must be 0 or more, got {seed}", loc=("body", "seed"))
    defaults = TrainingSettings()
    view.split_fraction = fraction if fraction is not None else (view.split_fraction or defaults.validation_split)
    view.split_seed = seed if seed is not None else (view.split_seed if view.split_seed is not None else defaults.seed)
    view.split_generation = (view.split_generation or 0) + 1
    session.flush()
    session.execute(
        update(ViewImage).where(ViewImage.view_id == view.id, ViewImage.assigned_split.is_not(None)).values(assigned_split=None),
        execution_options={"synchronize_session": "fetch"},
    )
    return split_state(session, view=view, persist=True)


def validation_digest(sha256s: list[str]) -> str:
    """Names a validation set: equal digests, the same validation images."""
    return hashlib.sha256("\n".join(sorted(sha256s)).encode()).hexdigest()


def sides(session: Session, *, view: View, image_ids: list[int]) -> dict[int, str | None]:
    """Each image's side in the view, as the split summary counts it: the side fixed for it; else, when
    the user fixed validation images, training (their validation set is the whole of it); else the side
    the stored split gave it. None: an image the split has not placed yet (the next version places it)."""
    result: dict[int, str | None] = dict.fromkeys(image_ids)
    if not image_ids:
        return result
    fixed_val = session.scalar(
        select(ViewImage.image_id).where(
            ViewImage.view_id == view.id, ViewImage.annotated.is_(True), ViewImage.split == Split.val.value
        ).limit(1)
    ) is not None
    rows = session.scalars(select(ViewImage).where(ViewImage.view_id == view.id, ViewImage.image_id.in_(image_ids)))
    for row in rows:
        if row.split:
            result[row.image_id] = row.split
        elif row.annotated:
            result[row.image_id] = Split.train.value if fixed_val else row.assigned_split
    return result
