"""SVG outputs keep their drawing and lose everything that could act."""

from __future__ import annotations

import base64
import re

import pytest

from studiohub.sharing.notebooks import make_snapshot, parse_notebook
from studiohub.sharing.render import render_fragment
from studiohub.sharing.svg import NOT_SHOWN, scrub_svg
from tests.sharinghub import code_cell, display, make_notebook

# What matplotlib writes, shortened: doctype, metadata, style, clip paths, <use>.
PLOT = """<?xml version="1.0" encoding="utf-8" standalone="no"?>
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">
<svg xmlns:xlink="http://www.w3.org/1999/xlink" width="460pt" height="345pt" viewBox="0 0 460 345"
 xmlns="http://www.w3.org/2000/svg" version="1.1">
 <metadata><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></metadata>
 <defs><style type="text/css">*{stroke-linejoin: round}</style>
  <path id="m1" d="M 0 0 L 0 3.5" style="stroke: #000"/></defs>
 <g id="figure_1"><g clip-path="url(#p1)"><path d="M 57 307 L 414 41" style="fill: none"/></g>
  <use xlink:href="#m1" x="57" y="307"/><text x="10" y="20">loss</text></g>
 <defs><clipPath id="p1"><rect x="57" y="41" width="357" height="266"/></clipPath></defs>
</svg>"""

EVIL = """<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
 onload="alert(1)"><script>alert(2)</script>
 <a href="javascript:alert(3)"><text>x</text></a>
 <foreignObject><iframe xmlns="http://www.w3.org/1999/xhtml" src="javascript:alert(4)"/>
 </foreignObject>
 <g onclick="alert(5)"><rect width="5" height="5" style="fill:red"/></g>
 <use xlink:href="https://evil.example/sprite.svg#x"/>
 <image href="javascript:alert(6)"/><image href="data:image/png;base64,iVBORw0KGgo="/>
 <animate attributeName="href" to="javascript:alert(7)"/><set attributeName="onload"/>
 <handler xmlns="http://www.w3.org/2001/xml-events">alert(8)</handler>
</svg>"""


def test_a_plot_keeps_its_drawing() -> None:
    clean = scrub_svg(PLOT)
    assert clean is not None
    for kept in ('viewBox="0 0 460 345"', "stroke-linejoin", 'clip-path="url(#p1)"',
                 'xlink:href="#m1"', "<clipPath", ">loss</text>"):
        assert kept in clean, kept
    assert "metadata" not in clean and "rdf" not in clean


def test_an_evil_svg_loses_everything_that_acts() -> None:
    clean = scrub_svg(EVIL)
    assert clean is not None
    lowered = clean.lower()
    for gone in ("<script", "onload", "onclick", "javascript", "foreignobject", "iframe",
                 "evil.example", "<animate", "<set", "handler", "alert", "<a "):
        assert gone not in lowered, gone
    assert 'fill:red' in clean and "data:image/png;base64," in clean


@pytest.mark.parametrize("text", ["<svg", "not xml at all", "<html><body/></html>",
                                  "<svg xmlns='http://example.org/other'/>",
                                  '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;'
                                  '&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;'
                                  '&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
                                  "<svg xmlns='http://www.w3.org/2000/svg'>" + "&d;" * 2000
                                  + "</svg>"])
def test_what_is_not_a_plain_svg_is_refused(text: str) -> None:
    assert scrub_svg(text) is None


def test_previews_embed_only_the_scrubbed_svg() -> None:
    notebook = make_notebook(code_cell("plot()", display({"image/svg+xml": EVIL}),
                                       display({"image/svg+xml": "<svg"})))
    snapshot = make_snapshot(parse_notebook(notebook), include_outputs=True)
    html = render_fragment(snapshot)
    (encoded,) = re.findall(r'data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)', html)
    embedded = base64.b64decode(encoded).decode()
    assert "<script" not in embedded and "javascript" not in embedded.lower()
    assert NOT_SHOWN in html
    assert snapshot.cells[0].outputs[0].data["image/svg+xml"] == EVIL  # the snapshot is intact
