"""Importing a dataset from disk: an ImageFolder tree or a CSV of ``path,label`` rows.

Both produce a :class:`DatasetSpec` with absolute paths, sorted so that the same data always gives
the same order. Files that cannot be training images (wrong type, missing, labelled twice) are
listed in ``rejected`` with a reason; decoding every image is left to :mod:`.checks`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

from visiontrain.data.dataset import DatasetSpec, Rejected, Sample
from visiontrain.data.errors import DataError
from visiontrain.data.images import IMAGE_EXTENSIONS

TRAIN_FOLDER_NAMES = ("train", "training")
VAL_FOLDER_NAMES = ("val", "valid", "validation")
# Held-out test sets sit beside train/val in many published datasets; they are not ours to train on.
TEST_FOLDER_NAMES = ("test", "testing")
# Operating-system litter (macOS resource forks, Windows thumbnails) is not the user's data.
IGNORED_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})

FOLDER_LAYOUT_HELP = (
    "expected <folder>/<class>/<images> (validation split off automatically) "
    "or <folder>/train/<class>/<images> with <folder>/val/<class>/<images>"
)

PATH_HEADERS = ("path", "filename", "file", "image", "image_path", "filepath", "file_path")
LABEL_HEADERS = ("label", "class", "concept", "category")
SPLIT_HEADERS = ("split", "subset")
SPLIT_VALUES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val"}
CSV_HELP = "expected rows path,label (optionally path,label,split with split train or val), header optional"
MAX_LISTED_ERRORS = 5


def load_dataset(path: str | Path, validation: str | Path | None = None) -> DatasetSpec:
    """Import ``path`` (an ImageFolder directory or a ``.csv`` file).

    ``validation`` (a folder ``<folder>/<class>/<images>`` or a CSV) replaces any validation set
    found in ``path``.
    """
    spec = _load_any(Path(path))
    if validation is None:
        return spec
    val_spec = _load_any(Path(validation))
    if val_spec.val is not None:
        raise DataError(
            f"the validation set {validation} has its own train/val split: give a folder laid out as "
            "<folder>/<class>/<images> or a CSV of path,label rows"
        )
    train_classes = {s.label for s in spec.train}
    unknown = sorted({s.label for s in val_spec.train} - train_classes)
    if unknown:
        raise DataError(
            f"the validation set {validation} has classes with no training images: {_quoted(unknown)}; "
            f"the training set {path} has {_quoted(sorted(train_classes))}"
        )
    return DatasetSpec(
        classes=sorted(train_classes),
        train=spec.train,
        val=val_spec.train,
        rejected=_sorted_rejected([*spec.rejected, *val_spec.rejected]),
        source=f"{spec.source}; validation: {val_spec.source}",
    )


def _load_any(path: Path) -> DatasetSpec:
    if path.is_dir():
        return load_image_folder(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return load_csv(path)
    if not path.exists():
        raise DataError(f"dataset not found: {path} does not exist")
    raise DataError(f"cannot import {path}: give an image folder ({FOLDER_LAYOUT_HELP}) or a .csv file ({CSV_HELP})")


# --- ImageFolder


def load_image_folder(root: Path) -> DatasetSpec:
    """Import ``root/<class>/<images>`` (train only) or ``root/train|val/<class>/<images>``."""
    root = Path(root).absolute()
    if not root.is_dir():
        raise DataError(f"image folder not found: {root} is not a directory ({FOLDER_LAYOUT_HELP})")
    folders = {p.name: p for p in _visible_children(root) if p.is_dir()}
    train_dir = _first_present(folders, TRAIN_FOLDER_NAMES)
    if train_dir is None:
        if _first_present(folders, VAL_FOLDER_NAMES) is not None:
            raise DataError(f"{root} has a validation folder but no train folder ({FOLDER_LAYOUT_HELP})")
        train, rejected = _read_class_folders(root, require_images=True)
        return _folder_spec(root, train, None, rejected, "ImageFolder")

    val_dir = _first_present(folders, VAL_FOLDER_NAMES)
    test_dirs = [name for name in folders if name.lower() in TEST_FOLDER_NAMES]
    expected = {train_dir.name, *([val_dir.name] if val_dir else []), *test_dirs}
    unexpected = sorted(set(folders) - expected)
    if unexpected:
        raise DataError(
            f"{root} mixes a {train_dir.name}/ folder with other folders ({_quoted(unexpected)}); {FOLDER_LAYOUT_HELP}"
        )
    train, rejected = _read_class_folders(train_dir, require_images=True)
    rejected += _loose_images(root, "not inside train/ or val/; left out")
    val = None
    if val_dir is not None:
        val, val_rejected = _read_class_folders(val_dir, require_images=False)
        rejected += val_rejected
        unknown = sorted({s.label for s in val} - {s.label for s in train})
        if unknown:
            raise DataError(
                f"{val_dir} has class folders with no counterpart in {train_dir}: {_quoted(unknown)}; "
                "every validation class needs training images"
            )
    folders_used = f"{train_dir.name}/ + {val_dir.name}/" if val_dir else f"{train_dir.name}/"
    unused = f"; {', '.join(t + '/' for t in test_dirs)} not used" if test_dirs else ""
    layout = f"ImageFolder ({folders_used}{unused})"
    return _folder_spec(root, train, val, rejected, layout)


def _folder_spec(
    root: Path, train: list[Sample], val: list[Sample] | None, rejected: list[Rejected], layout: str
) -> DatasetSpec:
    return DatasetSpec(
        classes=sorted({s.label for s in train}),
        train=_sorted_samples(train),
        val=None if val is None else _sorted_samples(val),
        rejected=_sorted_rejected(rejected),
        source=f"{layout} {root}",
    )


def _read_class_folders(parent: Path, *, require_images: bool) -> tuple[list[Sample], list[Rejected]]:
    """One class per sub-folder of ``parent``; images in nested folders belong to that class."""
    class_dirs = sorted((p for p in _visible_children(parent) if p.is_dir()), key=lambda p: p.name)
    if not class_dirs:
        raise DataError(f"no class folders in {parent}: {FOLDER_LAYOUT_HELP}")
    samples: list[Sample] = []
    rejected = _loose_images(parent, "not inside a class folder; left out")
    for class_dir in class_dirs:
        found = 0
        for file in _walk_files(class_dir):
            if file.suffix.lower() in IMAGE_EXTENSIONS:
                samples.append(Sample(file, class_dir.name))
                found += 1
            else:
                kind = f"extension {file.suffix!r}" if file.suffix else "no file extension"
                rejected.append(Rejected(file, f"not an image file ({kind})"))
        if found == 0 and require_images:
            raise DataError(
                f"class folder {class_dir} has no images (file types read: "
                f"{', '.join(sorted(IMAGE_EXTENSIONS))}); add images or remove the folder"
            )
    return samples, rejected


def _loose_images(folder: Path, reason: str) -> list[Rejected]:
    """Images lying beside the class folders: reported, since they have no label."""
    return [
        Rejected(p, reason)
        for p in _visible_children(folder)
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    ]


def _walk_files(folder: Path) -> Iterable[Path]:
    for current, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not _is_hidden(d)]
        for name in files:
            if not _is_hidden(name):
                yield Path(current) / name


def _visible_children(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if not _is_hidden(p.name)), key=lambda p: p.name)


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name in IGNORED_NAMES


def _first_present(folders: dict[str, Path], names: tuple[str, ...]) -> Path | None:
    for name, path in sorted(folders.items()):
        if name.lower() in names:
            return path
    return None


# --- CSV


def load_csv(csv_path: Path, root: Path | None = None) -> DatasetSpec:
    """Import a CSV of ``path,label[,split]`` rows; relative paths are read from ``root`` or the CSV's folder."""
    csv_path = Path(csv_path).absolute()
    base = Path(root).absolute() if root is not None else csv_path.parent
    rows = _read_rows(csv_path)
    if not rows:
        raise DataError(f"{csv_path} has no rows: {CSV_HELP}")
    columns, first_data = _columns(csv_path, rows)

    labels_by_path: dict[Path, tuple[str, str, int]] = {}  # path -> (label, split, line)
    conflicts: dict[Path, list[tuple[str, int]]] = {}
    rejected: list[Rejected] = []
    errors: list[str] = []
    for line, cells in rows[first_data:]:
        parsed = _parse_row(cells, columns, line)
        if isinstance(parsed, str):
            errors.append(parsed)
            continue
        raw_path, label, split = parsed
        path = _resolve(raw_path, base)
        if split == "test":
            rejected.append(Rejected(path, f"line {line}: marked as a held-out test image; not used for training"))
            continue
        if path in labels_by_path:
            first_label, _, first_line = labels_by_path[path]
            if first_label != label:
                conflicts.setdefault(path, [(first_label, first_line)]).append((label, line))
            continue  # the same path and label twice (e.g. one row per box) is one sample
        labels_by_path[path] = (label, split, line)
    if errors:
        more = f" (and {len(errors) - MAX_LISTED_ERRORS} more)" if len(errors) > MAX_LISTED_ERRORS else ""
        raise DataError(f"{csv_path}: {'; '.join(errors[:MAX_LISTED_ERRORS])}{more}. {CSV_HELP}")

    train: list[Sample] = []
    val: list[Sample] = []
    for path, (label, split, line) in labels_by_path.items():
        if path in conflicts:
            described = ", ".join(f"'{lab}' (line {ln})" for lab, ln in conflicts[path])
            rejected.append(Rejected(path, f"labelled with different classes: {described}; give one label per image"))
        elif not path.is_file():
            reason = "is a folder, not an image file" if path.is_dir() else "file not found"
            rejected.append(Rejected(path, f"{reason} (line {line})"))
        else:
            (val if split == "val" else train).append(Sample(path, label))

    if not train:
        example = next(iter(labels_by_path), None)
        raise DataError(
            f"{csv_path} lists no training image that exists (relative paths are read from {base}; "
            f"e.g. {example} is missing): give the folder the paths are relative to"
        )
    unknown = sorted({s.label for s in val} - {s.label for s in train})
    if unknown:
        raise DataError(f"{csv_path}: validation rows use classes with no training rows: {_quoted(unknown)}")
    has_val_rows = any(split == "val" for _, split, _ in labels_by_path.values())
    if has_val_rows and not val:
        raise DataError(f"{csv_path} marks validation rows, but none of their images exists (paths read from {base})")
    return DatasetSpec(
        classes=sorted({s.label for s in train}),
        train=_sorted_samples(train),
        val=_sorted_samples(val) if has_val_rows else None,
        rejected=_sorted_rejected(rejected),
        source=f"CSV {csv_path}",
    )


def _read_rows(csv_path: Path) -> list[tuple[int, list[str]]]:
    """Non-blank rows with their 1-based line numbers; comma, semicolon or tab separated."""
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{csv_path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV") from None
    except OSError as exc:
        raise DataError(f"cannot read {csv_path}: {exc.strerror or exc}") from None
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    delimiter = "," if "," in first else "\t" if "\t" in first else ";" if ";" in first else ","
    reader = csv.reader(lines, delimiter=delimiter)
    return [(reader.line_num, [c.strip() for c in cells]) for cells in reader if any(c.strip() for c in cells)]


def _columns(csv_path: Path, rows: list[tuple[int, list[str]]]) -> tuple[tuple[int, int, int | None], int]:
    """(path, label, split) column indices and the index of the first data row."""
    line, header = rows[0]
    names = [c.lower() for c in header]
    path_col = next((names.index(n) for n in PATH_HEADERS if n in names), None)
    label_col = next((names.index(n) for n in LABEL_HEADERS if n in names), None)
    if path_col is not None and label_col is not None:
        split_col = next((names.index(n) for n in SPLIT_HEADERS if n in names), None)
        return (path_col, label_col, split_col), 1
    if path_col is not None or label_col is not None or not _looks_like_path(header[0]):
        raise DataError(
            f"{csv_path} line {line} looks like a header ({', '.join(header)}) but its columns are not "
            f"recognised: name the image column one of {', '.join(PATH_HEADERS)} and the class column "
            f"one of {', '.join(LABEL_HEADERS)}"
        )
    return (0, 1, 2 if len(header) >= 3 else None), 0


def _looks_like_path(cell: str) -> bool:
    return Path(cell.replace("\\", "/")).suffix.lower() in IMAGE_EXTENSIONS


def _parse_row(cells: list[str], columns: tuple[int, int, int | None], line: int) -> tuple[str, str, str] | str:
    """(path, label, split) or an error message naming the line."""
    path_col, label_col, split_col = columns
    needed = max(c for c in columns if c is not None) + 1
    if len(cells) < needed:
        return f"line {line} has {len(cells)} column(s), {needed} expected"
    raw_path, label = cells[path_col], cells[label_col]
    if not raw_path:
        return f"line {line} has no image path"
    if not label:
        return f"line {line} has no label"
    split = "train"
    if split_col is not None:
        value = cells[split_col].lower()
        if value in ("test", "testing"):
            split = "test"
        elif value in SPLIT_VALUES:
            split = SPLIT_VALUES[value]
        else:
            return f"line {line} has split {cells[split_col]!r}; use train, val or test"
    return raw_path, label, split


def _resolve(raw_path: str, base: Path) -> Path:
    if os.sep == "/" and "\\" in raw_path:
        raw_path = raw_path.replace("\\", "/")  # written on Windows
    path = Path(raw_path).expanduser()
    return path if path.is_absolute() else base / path


# --- shared


def _sorted_samples(samples: list[Sample]) -> list[Sample]:
    return sorted(samples, key=lambda s: (s.path.as_posix(), s.label))


def _sorted_rejected(rejected: list[Rejected]) -> list[Rejected]:
    return sorted(rejected, key=lambda r: r.path.as_posix())


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)
