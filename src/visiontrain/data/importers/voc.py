"""Pascal VOC: one XML file per image (``<annotation>`` with ``<filename>``, ``<size>`` and ``<object>`` boxes).

The image is found from ``<filename>`` (beside the XML, in an ``images``/``JPEGImages`` folder, or
anywhere when its name is unique), else from the XML's own name. An XML with no ``<object>`` says the
image has no object. ``ImageSets/Main/train.txt`` and ``val.txt``, when present, give the split.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import PurePosixPath

import defusedxml
import defusedxml.ElementTree as SafeElementTree

from visiontrain.data.archives import ArchiveError
from visiontrain.data.importers.base import DatasetFormat, ImportedDataset, register
from visiontrain.data.importers.builder import DatasetBuilder
from visiontrain.data.importers.folder import SPLIT_FOLDERS, DatasetFolder, is_image_name, join, parent_of

_IMAGE_FOLDERS = ("images", "JPEGImages", "Images", "imgs")
_MAX_XML_BYTES = 10 * 1024 * 1024
_HEAD_BYTES = 2048
_CORNERS = ("xmin", "ymin", "xmax", "ymax")


def matches(folder: DatasetFolder) -> bool:
    return any(_looks_like_voc(folder, name) for name in folder.with_suffix(".xml"))


def load(folder: DatasetFolder, task: str) -> ImportedDataset:
    xml_names = [name for name in folder.with_suffix(".xml") if _looks_like_voc(folder, name)]
    if not xml_names:
        raise ArchiveError("no Pascal VOC annotation found: expected .xml files with an <annotation> root")
    builder = DatasetBuilder(folder, "voc", task)
    stems = {PurePosixPath(name).stem: name for name in folder.image_names}
    for xml_name in xml_names:
        builder.mark_read(xml_name)
        _read_xml(folder, builder, xml_name, stems)
    for list_name, image_stems, split in _image_sets(folder):
        builder.mark_read(list_name)
        for stem in image_stems:
            if stem in stems and builder.has_image(stems[stem]):
                builder.set_split(stems[stem], split)
    return builder.build()


def _read_xml(folder: DatasetFolder, builder: DatasetBuilder, xml_name: str, stems: dict[str, str]) -> None:
    root = _parse(folder, xml_name)
    if isinstance(root, str):
        builder.reject(xml_name, root)
        return
    image = _find_image(folder, xml_name, root, stems)
    if image is None:
        wanted = (root.findtext("filename") or "").strip() or "no <filename>"
        builder.reject(xml_name, f"annotation without image ({wanted} not found)")
        return
    if not builder.has_image(image):
        return  # rejected with its own reason
    objects = []
    for number, element in enumerate(root.iter("object"), start=1):
        concept = (element.findtext("name") or "").strip()
        box = element.find("bndbox")
        if not concept:
            builder.reject(xml_name, f"object {number} has no <name>; the file was not imported")
            return
        try:
            corners = tuple(float((box.findtext(tag) or "").strip()) for tag in _CORNERS)  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            reason = f"object {number} ({concept}) has no numeric <bndbox> xmin, ymin, xmax, ymax"
            builder.reject(xml_name, f"{reason}; the file was not imported")
            return
        objects.append((concept, corners))
    builder.mark_annotated(image)
    size = root.find("size")
    if size is not None:
        builder.check_declared_size(image, _int(size.findtext("width")), _int(size.findtext("height")))
    for concept, corners in objects:
        builder.add_object(image, concept, *corners)


def _find_image(folder: DatasetFolder, xml_name: str, root: ElementTree.Element, stems: dict[str, str]) -> str | None:
    xml_path = PurePosixPath(xml_name)
    here = parent_of(xml_name)
    bases = [base for base in (here, *(join(parent_of(here), f) for f in _IMAGE_FOLDERS)) if base]
    file_name = (root.findtext("filename") or "").strip()
    if file_name:
        found = folder.find_image(file_name, *bases)
        if found:
            return found
        if not is_image_name(file_name):  # some tools write the name without its extension
            found = stems.get(PurePosixPath(file_name).name)
            if found:
                return found
    return stems.get(xml_path.stem)


def _parse(folder: DatasetFolder, xml_name: str) -> ElementTree.Element | str:
    path = folder.files[xml_name]
    if path.stat().st_size > _MAX_XML_BYTES:
        return f"XML file larger than {_MAX_XML_BYTES // 1024**2} MB"
    # defusedxml, whatever the encoding (a byte filter misses a UTF-16 DOCTYPE): VOC files never need a
    # DTD, so one is refused outright, with entities and external references.
    try:
        root = SafeElementTree.fromstring(path.read_bytes(), forbid_dtd=True)
    except defusedxml.DTDForbidden:
        return "XML with a DTD (<!DOCTYPE ...>) is not accepted"
    except (defusedxml.EntitiesForbidden, defusedxml.ExternalReferenceForbidden):
        return "XML with entity declarations or external references is not accepted"
    except ElementTree.ParseError as exc:
        return f"not valid XML ({exc})"
    except (ValueError, LookupError) as exc:  # an encoding the parser does not know, and the like
        return f"not readable XML ({exc})"
    if root.tag != "annotation":
        return f"not a Pascal VOC file (root element <{root.tag}>, expected <annotation>)"
    return root


def _looks_like_voc(folder: DatasetFolder, xml_name: str) -> bool:
    with open(folder.files[xml_name], "rb") as handle:
        head = handle.read(_HEAD_BYTES)
    for bom, encoding in ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if head.startswith(bom):  # UTF-16 (tools on Windows write it): look at the text, not the bytes
            return "<annotation" in head[len(bom) : len(head) - len(head) % 2].decode(encoding, errors="ignore")
    return b"<annotation" in head


def _image_sets(folder: DatasetFolder) -> list[tuple[str, list[str], str]]:
    """(list file, image stems, split) from VOC's ImageSets/Main/{train,val,trainval}.txt."""
    sets = []
    for name in folder.with_suffix(".txt"):
        path = PurePosixPath(name)
        split = SPLIT_FOLDERS.get(path.stem.lower())
        if path.parent.name == "Main" and path.parent.parent.name == "ImageSets" and split:
            lines = folder.files[name].read_text(encoding="utf-8-sig", errors="replace").splitlines()
            sets.append((name, [line.split()[0] for line in lines if line.strip()], split))
    return sets


def _int(text: str | None) -> int:
    try:
        return int(float((text or "").strip()))
    except (ValueError, OverflowError):  # not a number, or nan/inf
        return 0


FORMAT = register(
    DatasetFormat(
        name="voc",
        title="Pascal VOC",
        tasks=("detection", "tagging"),
        detect_priority=20,
        matches=matches,
        load=load,
    )
)
