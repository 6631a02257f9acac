"""Reading a dataset from disk for the engine: the platform's importers, converted into a :class:`DatasetSpec`.

The CLI and the platform read data with one set of rules (:mod:`visiontrain.data.importers`): the
same layouts (ImageFolder, CSV, COCO, YOLO, VOC, detected the same way), the same header names and
delimiters, the same split folders and values, the same test for a usable image
(:func:`visiontrain.data.checks.inspect_image`). What differs is only what each can do with an
image that carries no annotation: the platform imports it unannotated, the engine cannot train on
it, so here it is listed in ``rejected`` with the reason.

Splits: ``train`` (or none given) trains; ``val`` is the validation set (None when nothing is
marked val: the run splits one off); ``test`` goes to :attr:`DatasetSpec.test`, a held-out set
that is never used to choose a model and is evaluated after training.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from visiontrain.data.archives import ArchiveError
from visiontrain.data.dataset import DatasetSpec, Rejected, Sample
from visiontrain.data.errors import DataError

# The tasks the engine trains from a dataset on disk.
ENGINE_TASKS = ("classification", "tagging", "detection")
BOX_FORMATS = ("coco", "yolo", "voc")  # layouts that hold boxes: detection unless tagging is asked for
FOLDER_LAYOUT_HELP = (
    "expected <folder>/<class>/<images> (validation split off automatically), or <folder>/train/<class>/<images> "
    "with <folder>/val/<class>/<images> (and <folder>/test/<class>/<images>, held out)"
)
CSV_HELP = (
    "expected rows path,label (tagging: path,labels with labels joined by ';', empty for none), optionally a "
    "split column (train, val or test); header optional"
)


def load_dataset(
    path: str | Path,
    validation: str | Path | None = None,
    *,
    task: str = "classification",
    format: str | None = None,  # noqa: A002 - the importers' parameter name
    require_train: bool = True,
) -> DatasetSpec:
    """Read ``path`` (a dataset folder in any importable layout, or a ``.csv`` file) for ``task``.

    ``require_train=False``: a set to evaluate on, which may hold only validation or test images.

    ``format``: one of the importers' format names, or None to detect it as the platform does.
    ``validation`` (a folder or CSV without a split of its own) replaces any validation set found in
    ``path``. Raises :class:`DataError` with a message naming the file, line or folder at fault.
    """
    if task not in ENGINE_TASKS:
        raise DataError(f"cannot train a {task!r} model from a dataset on disk; tasks: {', '.join(ENGINE_TASKS)}")
    spec = _load_any(Path(path), task, format, role="training" if require_train else "evaluation")
    if validation is None:
        return spec
    val_spec = _load_any(Path(validation), task, None, role="validation")
    # A validation set is one side, whatever its name marks it (train, val.csv, test_labels.csv), not several.
    sides = [side for side in (val_spec.train, val_spec.val, val_spec.test) if side]
    if len(sides) != 1:
        raise DataError(
            f"the validation set {validation} has its own train/val/test split: give a folder laid out as "
            "<folder>/<class>/<images> or a CSV without a split column"
        )
    val_samples = sides[0]
    _require_known_labels(spec.classes, val_samples, f"the validation set {validation}", task)
    return DatasetSpec(
        classes=spec.classes,
        train=spec.train,
        val=val_samples,
        rejected=_sorted_rejected([*spec.rejected, *val_spec.rejected]),
        source=f"{spec.source}; validation: {val_spec.source}",
        task=task,
        test=spec.test,
        warnings=[*spec.warnings, *val_spec.warnings],
    )


def infer_task(path: str | Path) -> str:
    """The task a dataset on disk is for when none is named: ``detection`` for a layout that holds boxes
    (COCO, YOLO, Pascal VOC, a CSV of filename,class,xmin,ymin,xmax,ymax), else ``classification``
    (class folders, a CSV of path,label; tagging is always asked for by name)."""
    import csv

    from visiontrain.data.importers.base import detect_format
    from visiontrain.data.importers.csv_labels import CORNER_HEADERS
    from visiontrain.data.importers.folder import DatasetFolder, dataset_root

    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
            header = [cell.strip().lower() for cell in next(csv.reader(handle), [])]
        return "detection" if all(name in header for name in CORNER_HEADERS) else "classification"
    if not path.is_dir():
        return "classification"
    try:
        found = detect_format(DatasetFolder(dataset_root(path)), "tagging")
    except ArchiveError:
        return "classification"  # class folders, or a layout the reader will name the problem of
    if found.name == "csv":
        return "detection" if any(infer_task(p) == "detection" for p in sorted(path.rglob("*.csv"))[:20]) else "classification"
    return "detection" if found.name in BOX_FORMATS else "classification"


def load_image_folder(root: str | Path, *, task: str = "classification") -> DatasetSpec:
    """Read ``root/<class>/<images>`` or ``root/train|val|test/<class>/<images>``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder not found: {root} is not a directory ({FOLDER_LAYOUT_HELP})")
    return _load_any(root, task, "imagefolder")


def load_csv(csv_path: str | Path, root: str | Path | None = None, *, task: str = "classification") -> DatasetSpec:
    """Read a CSV of ``path,label[,split]`` rows; relative paths start from ``root`` (default: the CSV's folder,
    then ``images/`` beside it)."""
    return _load_any(Path(csv_path), task, "csv", root=None if root is None else Path(root))


def _load_any(
    path: Path, task: str, format_name: str | None, root: Path | None = None, role: str = "training"
) -> DatasetSpec:
    from visiontrain.data.importers import import_archive, import_file

    if not path.exists():
        raise DataError(f"dataset not found: {path} does not exist")
    try:
        if path.is_dir():
            imported = import_archive(path, format=format_name, task=task)
        elif path.is_file() and path.suffix.lower() == ".csv":
            imported = import_file(path, task=task, root=root)
        else:
            raise DataError(
                f"cannot import {path}: give a dataset folder ({FOLDER_LAYOUT_HELP}; or COCO, YOLO, Pascal VOC) "
                f"or a .csv file ({CSV_HELP})"
            )
    except ArchiveError as exc:
        raise DataError(f"{path}: {exc}") from None
    return to_spec(imported, source=path.absolute(), require_train=role == "training")


def to_spec(imported: object, *, source: Path | None = None, require_train: bool = True) -> DatasetSpec:
    """The engine's view of an :class:`~visiontrain.data.importers.ImportedDataset`: samples by split,
    every image without an annotation in ``rejected`` with the reason."""
    from visiontrain.data.importers import ImportedDataset

    assert isinstance(imported, ImportedDataset)
    task = imported.task
    root = (imported.root or Path(".")).absolute()
    files = {image.name: image.path.absolute() for image in imported.images}

    def path_of(name: str) -> Path:
        return files.get(name) or (Path(name) if Path(name).is_absolute() else root / name)

    boxes = imported.boxes if task == "detection" else {}
    annotations: dict[str, tuple[str, ...]] = (
        {name: (label,) for name, label in imported.labels.items()}
        if task == "classification"
        else {name: tuple(sorted({b.concept for b in found})) for name, found in boxes.items()}
        if task == "detection"
        else {name: tuple(tags) for name, tags in imported.tags.items()}
    )
    rejected = [Rejected(path_of(name), reason) for name, reason in imported.rejected]
    explained = {name for name, _ in imported.rejected}
    sides: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    for image in imported.images:
        labels = annotations.get(image.name)
        if labels is None:
            if image.name not in explained:
                rejected.append(Rejected(path_of(image.name), _unannotated_reason(imported.format, task)))
            continue
        sides[imported.split.get(image.name) or "train"].append(Sample(path_of(image.name), labels, tuple(boxes.get(image.name, ()))))
    train, val, test = (_sorted_samples(sides[s]) for s in ("train", "val", "test"))
    where = source or root
    if not train and not require_train:
        if not val and not test:
            raise DataError(f"{where} has no annotated image ({len(rejected)} file(s) left out)")
        return DatasetSpec(
            classes=sorted({label for s in val + test for label in s.labels}), train=[], val=val or None,
            rejected=_sorted_rejected(rejected), source=f"{_TITLES.get(imported.format, imported.format)} {where}",
            task=task, test=test or None, warnings=list(imported.warnings),
        )
    if not train:
        counts = f"{len(val)} validation, {len(test)} test" if val or test else "no annotated image"
        raise DataError(
            f"{where} has no training images ({counts}; {len(rejected)} file(s) left out"
            + (f", e.g. {rejected[0].path.name}: {rejected[0].reason}" if rejected else "")
            + ")"
        )
    classes = sorted({label for s in train for label in s.labels})
    if task == "classification" or classes:
        _require_known_labels(classes, val, f"{where} (validation)", task)
        _require_known_labels(classes, test, f"{where} (test)", task)
    return DatasetSpec(
        classes=classes,
        train=train,
        val=val or None,
        rejected=_sorted_rejected(rejected),
        source=f"{_TITLES.get(imported.format, imported.format)} {where}{_split_note(train, val, test)}",
        task=task,
        test=test or None,
        warnings=list(imported.warnings),
    )


_TITLES = {"imagefolder": "ImageFolder", "csv": "CSV", "coco": "COCO", "yolo": "YOLO", "voc": "Pascal VOC"}


def _unannotated_reason(format_name: str, task: str) -> str:
    if format_name == "imagefolder":
        return "not inside a class folder: no label; left out"
    what = {"classification": "label", "detection": "boxes"}.get(task, "tags")
    return f"no {what} for this image in the {_TITLES.get(format_name, format_name)} annotations; left out"


def _split_note(train: list[Sample], val: list[Sample], test: list[Sample]) -> str:
    parts = [f"{len(train)} train"]
    if val:
        parts.append(f"{len(val)} validation")
    if test:
        parts.append(f"{len(test)} test, held out")
    return f" ({', '.join(parts)})"


def _require_known_labels(classes: list[str], samples: list[Sample], where: str, task: str) -> None:
    known = set(classes)
    unknown = sorted({label for s in samples for label in s.labels} - known)
    if unknown:
        what = "classes" if task == "classification" else "concepts"
        raise DataError(
            f"{where} has {what} with no training images: {_quoted(unknown[:10])}"
            f"{' ...' if len(unknown) > 10 else ''}; the training set has {_quoted(classes[:20])}"
            f"{' ...' if len(classes) > 20 else ''}"
        )


def _sorted_samples(samples: list[Sample]) -> list[Sample]:
    return sorted(samples, key=lambda s: (s.path.as_posix(), s.labels))


def _sorted_rejected(rejected: list[Rejected]) -> list[Rejected]:
    return sorted(rejected, key=lambda r: (r.path.as_posix(), r.reason))


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)
