"""Render a snapshot as HTML that cannot run anything in the viewer's browser.

Three layers, each enough on its own for the common attacks:

1. **nbconvert** renders the cells with its JupyterLab template, through our
   ``studiohub-preview`` template that replaces JavaScript and widget outputs by a notice.
2. **nh3** (the Rust ``ammonia`` sanitizer) keeps only an allowlist of tags and
   attributes: no ``<script>``, ``<style>``, ``<svg>``, ``<iframe>``, ``<form>``, no
   event handlers, no ``javascript:`` links; images only as ``data:image/...`` URLs (an
   SVG shown through ``<img>`` never runs its scripts, and :mod:`.svg` has already
   reduced it to drawing; remote images, which would tell an author who opened their
   notebook, are dropped).
3. **Content-Security-Policy** on every page of the service forbids scripts outright
   (``script-src 'none'``), so even a sanitizer bug could not run one.

Rendering happens once per version, when it is published; previews serve the stored
result.
"""

from __future__ import annotations

import re
import threading
from functools import cache
from pathlib import Path

import nh3
from jupyter_core.paths import jupyter_path
from nbconvert import HTMLExporter
from nbformat import NotebookNode

from .svg import ScrubSVG

TEMPLATES = Path(__file__).with_name("nbconvert")
TEMPLATE_NAME = "studiohub-preview"
OWN_CSS = Path(__file__).with_name("static") / "preview.css"

#: Sent with every response of the service (HTML pages and JSON alike).
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'none'",
    "style-src 'self'",
    "img-src data:",
    "font-src 'self' data:",
    "form-action 'self'",
    "frame-ancestors 'self'",
    "base-uri 'none'",
))

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del",
    "details", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5",
    "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp",
    "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "tr", "tt", "u", "ul", "var",
}
#: Removed together with everything inside them (their text is never meant as prose).
DROPPED_WITH_CONTENT = {
    "script", "style", "svg", "math", "iframe", "object", "embed", "template", "noscript",
    "textarea", "select", "frame", "frameset", "applet",
}
ALLOWED_ATTRIBUTES = {
    "*": {"class", "id", "title", "lang", "dir"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
    "ol": {"start", "type"},
    "div": {"data-mime-type"},
}
URL_SCHEMES = {"http", "https", "mailto", "data"}
_IMAGE_DATA_URL = re.compile(r"^data:image/(png|jpeg|gif|webp|bmp|svg\+xml);base64,",
                             re.IGNORECASE)
_local = threading.local()


def render_fragment(notebook: NotebookNode) -> str:
    """The notebook's cells as sanitized HTML (no ``<html>``/``<head>``: a page embeds it)."""
    body, _ = _exporter().from_notebook_node(notebook)
    return sanitize(body)


def sanitize(html: str) -> str:
    """Keep only inert HTML: the allowlists above, and ``data:`` URLs only for images."""
    return nh3.clean(html, tags=ALLOWED_TAGS, clean_content_tags=DROPPED_WITH_CONTENT,
                     attributes=ALLOWED_ATTRIBUTES, url_schemes=URL_SCHEMES,
                     attribute_filter=_filter_attribute)


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    """``data:`` only as an image source; image sources only as ``data:image/...``."""
    if tag == "img" and attribute == "src":
        return value if _IMAGE_DATA_URL.match(value.strip()) else None
    if value.strip().lower().startswith("data:"):
        return None
    return value


def _exporter() -> HTMLExporter:
    """One exporter per thread: building one loads the templates (about 0.2 s)."""
    exporter: HTMLExporter | None = getattr(_local, "exporter", None)
    if exporter is None:
        exporter = HTMLExporter(template_name=TEMPLATE_NAME,
                                extra_template_basedirs=[str(TEMPLATES)])
        exporter.register_preprocessor(ScrubSVG, enabled=True)
        _local.exporter = exporter
    return exporter


@cache
def preview_css() -> str:
    """JupyterLab's notebook styles (shipped with nbconvert), code colours, our layout."""
    lab = _lab_static_dir()
    parts = [(lab / "index.css").read_text(), (lab / "theme-light.css").read_text()]
    empty = NotebookNode({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    _, resources = _exporter().from_notebook_node(empty)
    parts.extend(resources.get("inlining", {}).get("css", []))
    parts.append(OWN_CSS.read_text())
    return "\n".join(parts)


def _lab_static_dir() -> Path:
    for base in jupyter_path("nbconvert", "templates", "lab", "static"):
        if (Path(base) / "index.css").exists():
            return Path(base)
    raise FileNotFoundError("nbconvert's lab template (templates/lab/static/index.css) is "
                            "not installed: reinstall nbconvert")
