"""YOLO (Ultralytics / Darknet) datasets: one ``.txt`` label file per image, boxes normalised to 0..1.

Layouts: ``images/<split>/x.jpg`` with ``labels/<split>/x.txt`` (Ultralytics), ``<split>/images`` with
``<split>/labels`` (Roboflow), or the label file beside its image (Darknet). Class names come from a
``data.yaml``/``dataset.yaml`` (``names`` as a list or an id-to-name mapping) or ``classes.txt``/``obj.names``.

By YOLO convention an image without a label file has no objects: it is imported annotated with none
(and a warning lists them, since a forgotten label file looks the same).
"""

from __future__ import annotations

from pathlib import PurePosixPath

import yaml

from visiontrain.data.archives import ArchiveError
from visiontrain.data.importers.base import DatasetFormat, ImportedDataset, register
from visiontrain.data.importers.builder import DatasetBuilder, listing
from visiontrain.data.importers.folder import DatasetFolder

NAME_LIST_FILES = ("classes.txt", "obj.names", "classes.names")
# Normalised coordinates a little outside 0..1 are rounding from annotation tools; beyond this they are pixels.
_TOLERANCE = 0.01
_NO_IMAGE = "label file without image (no image with the same name in the matching images folder)"
# A data.yaml is a few lines of names and paths; anything this large is not one.
_MAX_YAML_BYTES = 1024 * 1024


class _AliasRefused(yaml.YAMLError):
    pass


class _PlainYamlLoader(yaml.SafeLoader):
    """Safe YAML without anchors and aliases: a few hundred bytes of nested aliases expand into
    billions of nodes ("billion laughs"), and a dataset's class list never needs them."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            line = event.start_mark.line + 1
            raise _AliasRefused(f"line {line}: YAML anchors and aliases (&name, *name) are not accepted; write the names out")
        return super().compose_node(parent, index)


def matches(folder: DatasetFolder) -> bool:
    return bool(_label_files(folder)) and (_yaml_with_names(folder) is not None or _name_list_file(folder) is not None)


def load(folder: DatasetFolder, task: str) -> ImportedDataset:
    names = _class_names(folder)
    label_files = _label_files(folder)
    if not label_files:
        raise ArchiveError("no YOLO label files found: expected labels/<split>/<image name>.txt beside images/<split>/")
    builder = DatasetBuilder(folder, "yolo", task)
    builder.declare_concepts(set(names.values()))
    for name in (_yaml_with_names(folder), _name_list_file(folder)):
        if name is not None:
            builder.mark_read(name)
    images_by_label_key = {_key_of_image(name): name for name in folder.image_names}
    images_beside = {_stem_path(name): name for name in folder.image_names}
    labelled: set[str] = set()
    for label_name in label_files:
        builder.mark_read(label_name)
        image = images_by_label_key.get(_stem_path(label_name)) or images_beside.get(_stem_path(label_name))
        if image is None:
            builder.reject(label_name, _NO_IMAGE)
            continue
        labelled.add(image)
        if not builder.has_image(image):
            continue  # the image itself is rejected, with its reason
        objects = _read_label_file(folder, label_name, names, builder.image_size(image))
        if isinstance(objects, str):
            builder.reject(label_name, objects)
            continue
        builder.mark_annotated(image)
        for concept, x_min, y_min, x_max, y_max in objects:
            builder.add_object(image, concept, x_min, y_min, x_max, y_max)
    without_labels = sorted(name for name in builder.probes if name not in labelled)
    for image in without_labels:
        builder.mark_annotated(image)
    if without_labels:
        builder.warn(
            f"{len(without_labels)} image(s) have no label file and were imported as having no objects "
            f"(the YOLO convention): {listing(without_labels)}"
        )
    return builder.build()


def _read_label_file(
    folder: DatasetFolder, label_name: str, names: dict[int, str], size: tuple[int, int]
) -> list[tuple[str, float, float, float, float]] | str:
    """The file's objects in pixels, or the reason the whole file is refused (a partial file would lose objects)."""
    try:
        text = folder.files[label_name].read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as exc:
        return f"cannot read the label file as text ({exc})"
    width, height = size
    objects = []
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        parsed = _parse_line(tokens, names)
        if isinstance(parsed, str):
            return f"bad line {number}: {parsed} ({line.strip()[:80]!r})"
        concept, x_min, y_min, x_max, y_max = parsed
        objects.append((concept, x_min * width, y_min * height, x_max * width, y_max * height))
    return objects


def _parse_line(tokens: list[str], names: dict[int, str]) -> tuple[str, float, float, float, float] | str:
    """(concept, normalised corners) from ``class cx cy w h`` or a segment ``class x1 y1 x2 y2 ...``."""
    try:
        class_value = float(tokens[0])
        values = [float(token) for token in tokens[1:]]
    except ValueError:
        return "expected numbers: class cx cy w h"
    if not class_value.is_integer():
        return f"class id {tokens[0]} is not an integer"
    class_id = int(class_value)
    if class_id not in names:
        return f"unknown class id {class_id} (the class names have ids {min(names)} to {max(names)})"
    if any(not (-_TOLERANCE <= value <= 1 + _TOLERANCE) for value in values):
        return "coordinates must be normalised to 0..1 (divide pixel values by the image width and height)"
    if len(values) == 4:
        cx, cy, w, h = values
        return names[class_id], cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    if len(values) >= 6 and len(values) % 2 == 0:
        # A segmentation polygon: its bounding box is the object's box.
        xs, ys = values[0::2], values[1::2]
        return names[class_id], min(xs), min(ys), max(xs), max(ys)
    return f"expected 5 values (class cx cy w h) or a polygon, found {len(tokens)}"


def _class_names(folder: DatasetFolder) -> dict[int, str]:
    yaml_name = _yaml_with_names(folder)
    if yaml_name is not None:
        return _names_from_yaml(folder, yaml_name)
    list_name = _name_list_file(folder)
    if list_name is not None:
        lines = folder.files[list_name].read_text(encoding="utf-8-sig", errors="replace").splitlines()
        names = {index: line.strip() for index, line in enumerate(lines) if line.strip()}
        if names:
            return names
        raise ArchiveError(f"{list_name} lists no class names")
    raise ArchiveError("YOLO dataset without class names: add a data.yaml with 'names', or a classes.txt")


def _names_from_yaml(folder: DatasetFolder, yaml_name: str) -> dict[int, str]:
    raw = _load_yaml(folder, yaml_name)["names"]
    if isinstance(raw, list):
        names = {index: str(name) for index, name in enumerate(raw)}
    elif isinstance(raw, dict):
        try:
            names = {int(key): str(value) for key, value in raw.items()}
        except (TypeError, ValueError):
            raise ArchiveError(f"{yaml_name}: 'names' must map integer class ids to names") from None
    else:
        raise ArchiveError(f"{yaml_name}: 'names' must be a list or a mapping of class id to name")
    if not names:
        raise ArchiveError(f"{yaml_name}: 'names' is empty")
    duplicates = sorted({n for n in names.values() if list(names.values()).count(n) > 1})
    if duplicates:
        raise ArchiveError(f"{yaml_name}: class names appear under several ids: {', '.join(duplicates)}")
    return names


def _yaml_with_names(folder: DatasetFolder) -> str | None:
    """The shallowest YAML file with a 'names' key (data.yaml, dataset.yaml, coco128.yaml ...).

    A YAML file that is refused on purpose (aliases, too large) is an error, not an ignored file: a
    hostile or broken data.yaml must say so rather than make the archive look like another layout.
    """
    if "yolo_yaml" not in folder.parsed:
        found = None
        for name in sorted(folder.with_suffix(".yaml", ".yml"), key=lambda n: (n.count("/"), n)):
            try:
                content = _load_yaml(folder, name)
            except _Refused:
                raise
            except ArchiveError:
                continue  # not YAML: reported as an ignored file
            if "names" in content:
                found = name
                break
        folder.parsed["yolo_yaml"] = found
    return folder.parsed["yolo_yaml"]  # type: ignore[return-value]


class _Refused(ArchiveError):
    pass


def _load_yaml(folder: DatasetFolder, name: str) -> dict:
    path = folder.files[name]
    if path.stat().st_size > _MAX_YAML_BYTES:
        raise _Refused(f"{name} is larger than {_MAX_YAML_BYTES // 1024} KB, too large for a dataset's YAML file")
    try:
        content = yaml.load(path.read_text(encoding="utf-8-sig"), Loader=_PlainYamlLoader)  # noqa: S506 - safe loader
    except _AliasRefused as exc:
        raise _Refused(f"{name}: {exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
        raise ArchiveError(f"{name} is not valid YAML ({exc})") from None
    return content if isinstance(content, dict) else {}


def _name_list_file(folder: DatasetFolder) -> str | None:
    found = sorted(
        (name for name in folder.files if PurePosixPath(name).name.lower() in NAME_LIST_FILES),
        key=lambda n: (n.count("/"), n),
    )
    return found[0] if found else None


def _label_files(folder: DatasetFolder) -> list[str]:
    """``.txt`` files in a ``labels`` folder, or beside an image with the same stem (Darknet)."""
    image_stems = {_stem_path(name) for name in folder.image_names}
    name_lists = set(NAME_LIST_FILES)
    return [
        name
        for name in folder.with_suffix(".txt")
        if PurePosixPath(name).name.lower() not in name_lists
        and ("labels" in PurePosixPath(name).parts[:-1] or _stem_path(name) in image_stems)
    ]


def _key_of_image(name: str) -> str:
    """images/train/x.jpg -> labels/train/x: where its label file would be (the last 'images' swapped)."""
    parts = list(PurePosixPath(name).with_suffix("").parts)
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == "images":
            parts[index] = "labels"
            break
    return "/".join(parts)


def _stem_path(name: str) -> str:
    return PurePosixPath(name).with_suffix("").as_posix()


FORMAT = register(
    DatasetFormat(
        name="yolo",
        title="YOLO",
        tasks=("detection", "tagging"),
        detect_priority=30,
        matches=matches,
        load=load,
    )
)
