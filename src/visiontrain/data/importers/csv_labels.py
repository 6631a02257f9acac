"""CSV files of labels or boxes, with the images beside them in the archive.

Two layouts, recognised from the header:
- labels: ``path,label`` (header optional), with an optional ``split`` column (train, val or test).
  Classification takes one label per image; tagging takes ``a;b`` or several rows per image, an
  empty label meaning "without concept".
- boxes: ``filename,width,height,class,xmin,ymin,xmax,ymax`` (the TensorFlow object-detection CSV;
  width and height optional), one row per box, for detection or tagging.
Several CSV files are read together; ``train_labels.csv``/``test_labels.csv`` give the split by name.
Cells are separated by commas, tabs or semicolons (whichever the first line uses, in that order).
A row whose annotation cannot be taken (no label for classification, an unknown split, conflicting
labels) is rejected naming its file and line; its image is imported unannotated.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import PurePosixPath

from visiontrain.data.archives import ArchiveError
from visiontrain.data.importers.base import DatasetFormat, ImportedDataset, Split, register
from visiontrain.data.importers.builder import DatasetBuilder, listing
from visiontrain.data.importers.folder import SPLIT_FOLDERS, DatasetFolder, is_image_name, join, parent_of

PATH_HEADERS = ("path", "filename", "file_name", "file", "image", "image_path", "filepath", "file_path", "image_name")
LABEL_HEADERS = (
    "label", "labels", "class", "class_name", "classes", "concept", "concepts", "category", "tags", "tag",
)
SPLIT_HEADERS = ("split", "subset", "set")
DELIMITERS = (",", "\t", ";")
CSV_HELP = (
    "expected rows path,label (or path,labels with labels joined by ';' for tagging), optionally a split column "
    "(train, val or test); header optional"
)
CORNER_HEADERS = ("xmin", "ymin", "xmax", "ymax")
TAG_SEPARATOR = ";"
_MAX_CSV_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class _Layout:
    kind: str  # "labels" or "boxes"
    path: int
    label: int
    split: int | None = None
    corners: tuple[int, int, int, int] | None = None
    size: tuple[int, int] | None = None


@dataclass(frozen=True)
class _Row:
    source: str  # "labels.csv line 7"
    cells: list[str]
    layout: _Layout
    file_split: Split | None


def matches(folder: DatasetFolder) -> bool:
    return any(not isinstance(table, str) for table in _tables(folder).values())


def load(folder: DatasetFolder, task: str) -> ImportedDataset:
    tables = {name: table for name, table in _tables(folder).items() if not isinstance(table, str)}
    if not tables:
        reasons = [f"{name}: {reason}" for name, reason in _tables(folder).items()]
        raise ArchiveError(
            f"no usable CSV file ({CSV_HELP}, or filename,class,xmin,ymin,xmax,ymax rows)"
            + (f": {'; '.join(reasons[:3])}" if reasons else " (the archive holds no .csv file)")
        )
    kinds = {layout.kind for layout, _ in tables.values()}
    if task == "detection" and "boxes" not in kinds:
        raise ArchiveError(
            "these CSV files hold path,label rows; a detection view needs filename,class,xmin,ymin,xmax,ymax rows"
        )
    if task == "classification" and "labels" not in kinds:
        raise ArchiveError("these CSV files hold boxes; import them into a detection or tagging view")
    wanted = {"detection": {"boxes"}, "classification": {"labels"}, "tagging": {"labels", "boxes"}}[task]

    # References first: when only the CSV was given (the CLI), the images it names are the dataset.
    resolved: list[tuple[str, _Row]] = []
    missing: dict[str, str] = {}
    read_tables: list[str] = []
    for csv_name, (layout, rows) in tables.items():
        if layout.kind not in wanted:
            continue
        read_tables.append(csv_name)
        here = parent_of(csv_name)
        bases = [base for base in (here, join(here, "images")) if base]
        file_split = _split_from_file_name(csv_name)
        for line, cells in rows:
            reference = cells[layout.path].strip()
            image = folder.find_image(reference, *bases, on_disk=not folder.scanned)
            if image is None:
                where = "not found in the archive" if folder.scanned else f"not found (relative paths are read from {here or '.'})"
                missing.setdefault(reference or f"(empty path, {csv_name} line {line})", f"listed in {csv_name} line {line} but {where}")
            else:
                resolved.append((image, _Row(f"{csv_name} line {line}", cells, layout, file_split)))

    builder = DatasetBuilder(folder, "csv", task)
    for csv_name in read_tables:
        builder.mark_read(csv_name)
    for reference, reason in missing.items():
        builder.reject(reference, reason)
    rows_by_image: dict[str, list[_Row]] = defaultdict(list)
    for image, row in resolved:
        if builder.has_image(image):
            rows_by_image[image].append(row)

    read_rows = {"classification": _classify, "tagging": _tag, "detection": _detect}[task]
    for image, rows in rows_by_image.items():
        split = _split_of(builder, image, rows)
        if split is False:
            continue  # rejected: an unknown split must not send the image to training by default
        read_rows(builder, image, rows)
        if split:
            builder.set_split(image, split)
    return builder.build()


def _classify(builder: DatasetBuilder, image: str, rows: list[_Row]) -> None:
    labels = {label for row in rows for label in _labels(row)}
    if not labels:
        builder.reject(
            image,
            f"{rows[0].source} has no label: a classification view takes exactly one concept per image "
            "(import into a tagging view for images without concept)",
        )
    elif len(labels) > 1:
        builder.reject(
            image,
            f"labelled {', '.join(sorted(labels))} ({', '.join(r.source for r in rows[:3])}): a classification view "
            "takes exactly one concept per image; import into a tagging view for several",
        )
    else:
        builder.set_label(image, labels.pop())


def _tag(builder: DatasetBuilder, image: str, rows: list[_Row]) -> None:
    builder.mark_annotated(image)  # an empty label is the explicit "without concept"
    for row in rows:
        for label in _labels(row):
            builder.add_tag(image, label)


def _detect(builder: DatasetBuilder, image: str, rows: list[_Row]) -> None:
    boxes = []
    for row in rows:
        layout = row.layout
        concept = row.cells[layout.label].strip()
        raw = [row.cells[i].strip() for i in layout.corners]  # type: ignore[union-attr]
        if not concept and not any(raw):
            continue  # a row with neither class nor box: the image has no object
        try:
            corners = [float(value) for value in raw]
        except ValueError:
            corners = []
        if not concept or len(corners) != 4 or not all(math.isfinite(v) for v in corners):
            # One bad row leaves the image's boxes incomplete: none are imported rather than some.
            builder.reject(image, f"{row.source}: expected a class and numeric xmin, ymin, xmax, ymax")
            return
        boxes.append((concept, corners))
    builder.mark_annotated(image)
    sized = next((row for row in rows if row.layout.size is not None), None)
    if sized is not None and sized.layout.size is not None:
        width_column, height_column = sized.layout.size
        builder.check_declared_size(image, _int(sized.cells[width_column]), _int(sized.cells[height_column]))
    for concept, corners in boxes:
        builder.add_object(image, concept, *corners)


def _labels(row: _Row) -> list[str]:
    cell = row.cells[row.layout.label]
    separator = TAG_SEPARATOR if row.layout.kind == "labels" else None
    parts = cell.split(separator) if separator else [cell]
    return [part.strip() for part in parts if part.strip()]


def _split_of(builder: DatasetBuilder, image: str, rows: list[_Row]) -> Split | None | bool:
    """The image's split (None: not given), or False when a row gives one that is not train, val or test
    (the image is rejected, naming the row). Rows that disagree are refused too: one image, one side."""
    splits: dict[str, str] = {}
    for row in rows:
        split = row.file_split
        if row.layout.split is not None:
            value = row.cells[row.layout.split].strip()
            if value and value.lower() not in SPLIT_FOLDERS:
                builder.reject(image, f"{row.source} has split {value!r}; use train, val or test (or leave it empty)")
                return False
            split = SPLIT_FOLDERS[value.lower()] if value else split  # type: ignore[assignment]
        if split:
            splits.setdefault(split, row.source)
    if len(splits) > 1:
        described = ", ".join(f"{split} ({source})" for split, source in splits.items())
        builder.reject(image, f"put in several splits: {described}; give each image one")
        return False
    return next(iter(splits), None)  # type: ignore[return-value]


def _tables(folder: DatasetFolder) -> dict[str, tuple[_Layout, list[tuple[int, list[str]]]] | str]:
    """Each CSV file's layout and data rows (line number, cells), or why it is not usable; parsed once."""
    if "csv" not in folder.parsed:
        folder.parsed["csv"] = {name: _read_table(folder, name) for name in folder.with_suffix(".csv")}
    return folder.parsed["csv"]  # type: ignore[return-value]


def _read_table(folder: DatasetFolder, name: str) -> tuple[_Layout, list[tuple[int, list[str]]]] | str:
    path = folder.files[name]
    if path.stat().st_size > _MAX_CSV_BYTES:
        return f"larger than {_MAX_CSV_BYTES // 1024**2} MB"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = next((d for d in DELIMITERS if d in first_line), ",")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        rows = [(reader.line_num, cells) for cells in reader if any(cell.strip() for cell in cells)]
    except csv.Error as exc:
        return f"not a valid CSV ({exc})"
    if not rows:
        return "empty"
    layout = _layout(rows[0][1])
    if layout is None:
        return (
            f"line {rows[0][0]} ({', '.join(c.strip() for c in rows[0][1])[:120]}) names no recognised columns: "
            f"name the image column one of {', '.join(PATH_HEADERS)} and the label column one of "
            f"{', '.join(LABEL_HEADERS)} (or give filename,class,xmin,ymin,xmax,ymax rows)"
        )
    header_present = not is_image_name(rows[0][1][layout.path].strip())
    data = rows[1:] if header_present else rows
    width = max([layout.path, layout.label, layout.split or 0, *(layout.corners or ()), *(layout.size or ())]) + 1
    # Short rows are padded: a missing trailing label is an empty label, which each task interprets.
    return layout, [(line, cells + [""] * (width - len(cells))) for line, cells in data]


def _layout(first_row: list[str]) -> _Layout | None:
    headers = [re.sub(r"[\s-]+", "_", cell.strip().lower()) for cell in first_row]
    path = _index(headers, PATH_HEADERS)
    if path is None:
        # No header: path,label or path,label,split when the first cell names an image.
        if first_row and is_image_name(first_row[0].strip()) and len(first_row) in (2, 3):
            return _Layout("labels", path=0, label=1, split=2 if len(first_row) == 3 else None)
        return None
    label = _index(headers, LABEL_HEADERS)
    if label is None:
        return None
    corners = tuple(_index(headers, (corner,)) for corner in CORNER_HEADERS)
    if all(index is not None for index in corners):
        width, height = _index(headers, ("width",)), _index(headers, ("height",))
        size = (width, height) if width is not None and height is not None else None
        return _Layout("boxes", path=path, label=label, corners=corners, size=size)  # type: ignore[arg-type]
    return _Layout("labels", path=path, label=label, split=_index(headers, SPLIT_HEADERS))


def _index(headers: list[str], names: tuple[str, ...]) -> int | None:
    for name in names:
        if name in headers:
            return headers.index(name)
    return None


def _split_from_file_name(csv_name: str) -> Split | None:
    for word in re.split(r"[^a-z0-9]+", PurePosixPath(csv_name).stem.lower()):
        split = SPLIT_FOLDERS.get(word)
        if split:
            return split  # type: ignore[return-value]
    return None


def _int(text: str) -> int:
    try:
        return int(float(text.strip()))
    except (ValueError, OverflowError):  # not a number, or nan/inf
        return 0


FORMAT = register(
    DatasetFormat(
        name="csv",
        title="CSV",
        tasks=("classification", "tagging", "detection"),
        detect_priority=40,
        matches=matches,
        load=load,
    )
)
