"""Pascal VOC: one XML file per image (``<annotation>`` with ``<filename>``, ``<size>`` and ``<object>`` boxes).

The image is found from ``<filename>`` (beside the XML, in an ``images``/``JPEGImages`` folder, or
anywhere when its name is unique), else from the XML's own name. An XML with no ``<object>`` says the
image has no object.

The split, as VOC is distributed: ``ImageSets/Main/train.txt``, ``val.txt``, ``trainval.txt`` and
``test.txt`` list image ids (file stems). ``train.txt`` and ``val.txt`` are preferred when present;
``trainval.txt`` (by definition the two together) alone means training, beside only one of them it
gives the other as what is left; ``test.txt`` means the held-out test set. An image in several lists
goes to the one held out most (test, then val, then train), with a warning. Lists are matched to
images beside their ``ImageSets`` folder first (an archive may hold VOC2007 and VOC2012). The
class lists (``cat_train.txt``) and the segmentation lists are not splits.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from pathlib import PurePosixPath

import defusedxml
import defusedxml.ElementTree as SafeElementTree

from visiontrain.data.archives import ArchiveError
from visiontrain.data.importers.base import DatasetFormat, ImportedDataset, register
from visiontrain.data.importers.builder import DatasetBuilder, listing
from visiontrain.data.importers.folder import SPLIT_FOLDERS, DatasetFolder, is_image_name, join, parent_of

_IMAGE_FOLDERS = ("images", "JPEGImages", "Images", "imgs")
_MAX_XML_BYTES = 10 * 1024 * 1024
_HEAD_BYTES = 2048
_CORNERS = ("xmin", "ymin", "xmax", "ymax")
_HELD_OUT_FIRST = ("test", "val", "train")


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
    _split_from_image_sets(folder, builder)
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


def _split_from_image_sets(folder: DatasetFolder, builder: DatasetBuilder) -> None:
    """Each image's split from the ImageSets/Main lists (see the module's docstring for the rules)."""
    by_stem: dict[str, list[str]] = defaultdict(list)
    for name in folder.image_names:
        by_stem[PurePosixPath(name).stem].append(name)
    sides: dict[str, dict[str, str]] = {}  # image -> split -> the list that says so
    for base, lists in sorted(_image_sets(folder).items()):
        for list_name, _ in lists.values():
            builder.mark_read(list_name)
        for split, list_name, ids in _split_lists(lists):
            for image_id in ids:
                image = _image_of(image_id, base, by_stem)
                if image is not None and builder.has_image(image):
                    sides.setdefault(image, {}).setdefault(split, list_name)
    several = []
    for image, found in sorted(sides.items()):
        builder.set_split(image, next(split for split in _HELD_OUT_FIRST if split in found))  # type: ignore[arg-type]
        if len(found) > 1:
            several.append(f"{image} ({', '.join(sorted(found.values()))})")
    if several:
        builder.warn(
            f"{len(several)} image(s) are listed in several ImageSets splits and were put in the one held out "
            f"most (test, then val, then train): {listing(several)}"
        )


def _split_lists(lists: dict[str, tuple[str, list[str]]]) -> list[tuple[str, str, list[str]]]:
    """(split, list file, ids) to apply, from one ImageSets/Main folder's lists by kind."""
    chosen = [(SPLIT_FOLDERS[kind], name, ids) for kind, (name, ids) in sorted(lists.items()) if kind != "trainval"]
    if "trainval" in lists:
        trainval_name, trainval = lists["trainval"]
        given = {split for split, _, _ in chosen}
        if not given & {"train", "val"}:
            chosen.append(("train", trainval_name, trainval))
        elif given >= {"train", "val"}:
            pass  # the two lists say it all; trainval.txt is their union
        else:
            # One of train.txt and val.txt: the other is what trainval.txt has beyond it.
            listed = {image_id for split, _, ids in chosen if split in ("train", "val") for image_id in ids}
            other = "val" if "train" in given else "train"
            chosen.append((other, trainval_name, [i for i in trainval if i not in listed]))
    return chosen


def _image_sets(folder: DatasetFolder) -> dict[str, dict[str, tuple[str, list[str]]]]:
    """VOC's split lists by the folder holding their ImageSets (``''``: the root), then by kind
    (``train``, ``val``, ``trainval``, ``test``): the file's name and the image ids it lists."""
    found: dict[str, dict[str, tuple[str, list[str]]]] = defaultdict(dict)
    for name in folder.with_suffix(".txt"):
        path = PurePosixPath(name)
        kind = path.stem.lower()
        if path.parent.name != "Main" or path.parent.parent.name != "ImageSets":
            continue
        if kind != "trainval" and kind not in SPLIT_FOLDERS:
            continue  # a class list (cat_train.txt): which images show the class, not a split
        lines = folder.files[name].read_text(encoding="utf-8-sig", errors="replace").splitlines()
        base = parent_of(path.parent.parent.as_posix())
        found[base][kind] = (name, [line.split()[0] for line in lines if line.strip()])
    return found


def _image_of(image_id: str, base: str, by_stem: dict[str, list[str]]) -> str | None:
    """The image a list's id names: the only one with that stem, else the one in an image folder beside
    the ImageSets folder (JPEGImages/, images/ ...), else the only one under that folder."""
    candidates = by_stem.get(image_id, [])
    if len(candidates) == 1:
        return candidates[0]
    prefix = f"{base}/" if base else ""
    for folder_name in _IMAGE_FOLDERS:
        inside = [c for c in candidates if parent_of(c) == f"{prefix}{folder_name}"]
        if len(inside) == 1:
            return inside[0]
    beside = [c for c in candidates if c.startswith(prefix)]
    return beside[0] if len(beside) == 1 else None


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
