"""Pascal VOC detection, as the VOC devkit distributes it.

- ``JPEGImages/<file>``: every image (whatever its format; the folder keeps VOC's name);
- ``Annotations/<stem>.xml``: ``<annotation>`` with ``<filename>``, ``<size>`` and one ``<object>``
  (``name``, ``pose``, ``truncated``, ``difficult``, ``bndbox``) per box; an image without objects
  gets an XML without ``<object>``. Corners are in pixels as stored: whole numbers written as
  integers (tools that parse them with int() read them), others with every digit of the float;
- ``ImageSets/Main/train.txt``, ``val.txt``, ``trainval.txt`` (the two together) and ``test.txt``:
  the stems of each split's images, one per line (a list only when it has images; images without
  a split are in none).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree

from visiontrain.data.exporters.base import ExportError, ExportFormat, ExportItem, Sink, number_text, register

# Characters XML 1.0 cannot hold: a concept or file name with one would make the file unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def write(items: list[ExportItem], concepts: list[str], task: str, sink: Sink) -> dict[str, str]:
    paths: dict[str, str] = {}
    lists: dict[str, list[str]] = {"train": [], "val": [], "trainval": [], "test": []}
    for item in items:
        path = f"JPEGImages/{item.file_name}"
        sink.write_file(path, item.image.path)
        sink.write_text(f"Annotations/{item.stem}.xml", annotation_xml(item))
        paths[item.image.name] = path
        if item.split:
            lists[item.split].append(item.stem)
            if item.split in ("train", "val"):
                lists["trainval"].append(item.stem)
    for name, stems in lists.items():
        if stems:
            sink.write_text(f"ImageSets/Main/{name}.txt", "".join(stem + "\n" for stem in stems))
    return paths


def annotation_xml(item: ExportItem) -> str:
    root = ElementTree.Element("annotation")
    _add(root, "folder", "JPEGImages")
    _add(root, "filename", _xml_text(item.file_name))
    source = _add(root, "source")
    _add(source, "database", "visiontrain")
    size = _add(root, "size")
    _add(size, "width", str(item.image.width))
    _add(size, "height", str(item.image.height))
    _add(size, "depth", "3")
    _add(root, "segmented", "0")
    for box in item.boxes:
        element = _add(root, "object")
        _add(element, "name", _xml_text(box.concept))
        _add(element, "pose", "Unspecified")
        _add(element, "truncated", "0")
        _add(element, "difficult", "0")
        corners = _add(element, "bndbox")
        for tag, value in (("xmin", box.x_min), ("ymin", box.y_min), ("xmax", box.x_max), ("ymax", box.y_max)):
            _add(corners, tag, number_text(value))
    ElementTree.indent(root, space="\t")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"


def _add(parent: ElementTree.Element, tag: str, text: str | None = None) -> ElementTree.Element:
    element = ElementTree.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def _xml_text(text: str) -> str:
    if _NOT_XML.search(text):
        raise ExportError(f"{text[:60]!r} holds a control character, which a Pascal VOC (XML) file cannot hold")
    return text


FORMAT = register(
    ExportFormat(
        name="voc",
        title="Pascal VOC",
        tasks=("detection",),
        write=write,
        layout="JPEGImages/, Annotations/<stem>.xml (no <object>: no object), ImageSets/Main/{train,val,trainval,test}.txt",
        order=30,
    )
)
