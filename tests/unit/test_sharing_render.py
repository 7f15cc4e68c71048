"""Previews are inert HTML: the sanitizer's allowlist and nbconvert's rendering together."""

from __future__ import annotations

import pytest

from studiohub.sharing.notebooks import make_snapshot, parse_notebook
from studiohub.sharing.render import (
    CONTENT_SECURITY_POLICY,
    preview_css,
    render_fragment,
    sanitize,
)
from tests.sharinghub import malicious_notebook

ATTACKS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<a href='javascript:alert(1)'>x</a>",
    "<a href='JaVaScRiPt:alert(1)'>x</a>",
    "<a href='&#106;avascript:alert(1)'>x</a>",
    "<a href=' javascript:alert(1)'>x</a>",
    "<svg onload=alert(1)><script>alert(1)</script></svg>",
    "<math><mtext><script>alert(1)</script></mtext></math>",
    "<iframe src='https://evil'></iframe>",
    "<iframe srcdoc='<script>alert(1)</script>'></iframe>",
    "<object data='javascript:alert(1)'></object>",
    "<embed src='https://evil/x.swf'>",
    "<form action='https://evil'><input name=a></form>",
    "<div style='background:url(javascript:alert(1))'>x</div>",
    "<style>body{background:url(https://evil/x)}</style>",
    "<meta http-equiv='refresh' content='0;url=https://evil'>",
    "<base href='https://evil/'>",
    "<link rel=stylesheet href='https://evil/x.css'>",
    "<a href='data:text/html,<script>alert(1)</script>'>x</a>",
    "<img src='data:text/html;base64,PHNjcmlwdD4='>",
    "<img src='https://tracker.example/pixel.png'>",
    "<details open ontoggle=alert(1)>x</details>",
    "<template><script>alert(1)</script></template>",
    "<noscript><p title='</noscript><img src=x onerror=alert(1)>'></noscript>",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_sanitize_leaves_nothing_that_runs_or_loads(attack: str) -> None:
    clean = sanitize(attack).lower()
    for forbidden in ("<script", "javascript", "onerror", "onload", "ontoggle", "<iframe",
                      "<svg", "<object", "<embed", "<form", "<style", "style=", "<meta",
                      "<base", "<link", "data:text", "https://evil", "tracker.example"):
        assert forbidden not in clean, (attack, clean)


def test_sanitize_keeps_what_notebooks_need() -> None:
    html = ("<table><thead><tr><th colspan=2>a</th></tr></thead><tbody><tr><td>1</td></tr>"
            "</tbody></table><pre><code class='x'>code</code></pre>"
            "<a href='https://docs.example/page'>docs</a><h2 id='part'>Part</h2>"
            "<img src='data:image/png;base64,iVBORw0KGgo=' alt='plot'>"
            "<img src='data:image/svg+xml;base64,PHN2Zz4=' alt='svg'>")
    clean = sanitize(html)
    for kept in ("<th colspan=\"2\">", "<code class=\"x\">", 'href="https://docs.example/page"',
                 'id="part"', 'src="data:image/png;base64,', 'src="data:image/svg+xml;base64,'):
        assert kept in clean, kept


def test_rendering_a_malicious_notebook_gives_inert_html() -> None:
    snapshot = make_snapshot(parse_notebook(malicious_notebook()), include_outputs=True)
    html = render_fragment(snapshot).lower()
    for forbidden in ("<script", "javascript:", "<svg", "<iframe", "onerror", "onload",
                      "onmouseover", "pwned"):
        assert forbidden not in html, forbidden
    assert "bold survives" in html and "javascript output is not run" in html
    assert "<html" not in html  # a fragment: the page around it is the service's


def test_policy_forbids_every_script() -> None:
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'none'" and directives["script-src"] == "'none'"
    assert directives["style-src"] == "'self'" and directives["base-uri"] == "'none'"
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY


def test_preview_css_has_lab_styles_code_colours_and_ours() -> None:
    css = preview_css()
    assert ".jp-Cell" in css and ".highlight" in css and ".sh-info" in css
    assert "@import" not in css
