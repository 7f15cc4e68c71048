"""SVG outputs reduced to drawing: no script, no event handler, no outside link.

A preview shows SVG outputs only as ``<img src="data:image/svg+xml…">``, where browsers
never run an SVG's scripts. This module makes the SVG itself inert too, so the claim
does not rest on one browser rule: elements outside an allowlist of what plots use
(matplotlib, Plotly's static export, graphviz) are removed with their content
(``<script>``, ``<foreignObject>``, ``<animate>``/``<set>``, which can rewrite links,
``<a>``, ``<iframe>``, elements of other namespaces); ``on*`` attributes are removed;
``href`` may only point inside the document (``#id``) or, on ``<image>``, at an
embedded ``data:image/…``. An SVG that does not parse is replaced by a line of text.

Parsing is Python's expat (2.4.1+ refuses the "billion laughs" entity bomb, and external
entities are never fetched).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from nbconvert.preprocessors import Preprocessor

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)

ALLOWED_ELEMENTS = {
    "svg", "g", "defs", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon",
    "text", "tspan", "textPath", "clipPath", "mask", "pattern", "linearGradient",
    "radialGradient", "stop", "use", "symbol", "marker", "image", "title", "desc", "style",
    "filter", "feGaussianBlur", "feOffset", "feBlend", "feFlood", "feComposite", "feMerge",
    "feMergeNode", "feColorMatrix",
}
_LOCAL_REF = re.compile(r"^#[\w.:-]*$")
_IMAGE_DATA = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,", re.IGNORECASE)
NOT_SHOWN = "[an SVG image that could not be read safely is not shown in the preview]"


def scrub_svg(text: str) -> str | None:
    """The SVG with only drawing left, or None when it is not a readable SVG document."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return None
    if _local_name(root.tag) != "svg" or not _in_svg_namespace(root.tag):
        return None
    _scrub(root)
    return ET.tostring(root, encoding="unicode")


def _scrub(element: ET.Element) -> None:
    _scrub_attributes(element)
    for child in list(element):
        if not _in_svg_namespace(child.tag) or _local_name(child.tag) not in ALLOWED_ELEMENTS:
            element.remove(child)
        else:
            _scrub(child)


def _scrub_attributes(element: ET.Element) -> None:
    for name, value in list(element.attrib.items()):
        local = _local_name(name)
        if local.lower().startswith("on") or not _attribute_ok(element, local, value):
            del element.attrib[name]


def _attribute_ok(element: ET.Element, local: str, value: str) -> bool:
    if local != "href":
        return "javascript:" not in value.lower().replace(" ", "")
    value = value.strip()
    if _local_name(element.tag) == "image":
        return bool(_LOCAL_REF.match(value) or _IMAGE_DATA.match(value))
    return bool(_LOCAL_REF.match(value))


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _in_svg_namespace(tag: str) -> bool:
    return tag.startswith("{" + SVG_NS + "}")


class ScrubSVG(Preprocessor):
    """nbconvert preprocessor: every ``image/svg+xml`` output through :func:`scrub_svg`.

    It runs on nbconvert's own copy of the notebook: the snapshot (what a copy receives)
    keeps the author's SVG as it was.
    """

    def preprocess_cell(self, cell: Any, resources: dict[str, Any],
                        index: int) -> tuple[Any, dict[str, Any]]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/svg+xml" not in data:
                continue
            svg = data["image/svg+xml"]
            clean = scrub_svg("".join(svg) if isinstance(svg, list) else str(svg))
            if clean is None:
                del data["image/svg+xml"]
                data.setdefault("text/plain", NOT_SHOWN)
            else:
                data["image/svg+xml"] = clean
        return cell, resources
