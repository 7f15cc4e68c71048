"""What may be shared and what a snapshot keeps (pure functions, no service)."""

from __future__ import annotations

from typing import Any

import nbformat
import pytest

from studiohub.sharing.notebooks import (
    Environment,
    NotebookError,
    check_name,
    check_note,
    environment_of,
    make_snapshot,
    parse_notebook,
    serialize,
)


def notebook(**metadata: Any) -> dict[str, Any]:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": metadata, "cells": [
        {"cell_type": "markdown", "id": "m", "metadata": {}, "source": "# Title"},
        {"cell_type": "code", "id": "c", "metadata": {"trusted": True, "tags": ["keep"]},
         "source": "1 + 1", "execution_count": 3,
         "outputs": [{"output_type": "execute_result", "execution_count": 3, "metadata": {},
                      "data": {"text/plain": "2"}}]},
    ]}


@pytest.mark.parametrize("name", ["analysis.ipynb", "Résultats 2026.ipynb", "a b (1).ipynb"])
def test_plain_file_names_are_accepted(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(("name", "message"), [
    ("../x.ipynb", "must be a file name"), ("a/b.ipynb", "must be a file name"),
    ("a\\b.ipynb", "must be a file name"), ("..", "must be a file name"),
    ("a\nb.ipynb", "must be a file name"), (".hidden.ipynb", "hidden file name"),
    ("notes.txt", "must end in .ipynb"), (".ipynb", "hidden file name"),
    ("x" * 250 + ".ipynb", "longer than 255 bytes"),
])
def test_names_that_could_escape_or_hide_are_refused(name: str, message: str) -> None:
    with pytest.raises(NotebookError, match=message):
        check_name(name)


def test_notes_are_bounded_and_trimmed() -> None:
    assert check_note("  see cell 3\n") == "see cell 3"
    with pytest.raises(NotebookError, match="at most 2000"):
        check_note("x" * 2001)


@pytest.mark.parametrize(("data", "message"), [
    ({"nbformat": 3, "metadata": {}, "worksheets": []}, "nbformat 3 is not supported"),
    ({"nbformat": True, "nbformat_minor": 5, "metadata": {}, "cells": []}, "nbformat True"),
    ({"nbformat_minor": 5, "metadata": {}, "cells": []}, "nbformat None"),
    ({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "x"}]},
     "not a valid nbformat 4 notebook"),
    ({"nbformat": 4, "nbformat_minor": 5, "metadata": {}}, "not a valid nbformat 4 notebook"),
    ({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": "x"}, "not a valid"),
    ({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [1, None]}, "not a valid"),
    ({"nbformat": 4, "nbformat_minor": 5, "metadata": [], "cells": []}, "not a valid"),
    ({"nbformat": 4, "nbformat_minor": "5", "metadata": {}, "cells": []},
     "nbformat_minor '5' must be a non-negative integer"),
    ({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "id": "a", "metadata": {}, "source": "", "outputs": [{}],
         "execution_count": None}]}, "not a valid"),
])
def test_invalid_notebooks_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(NotebookError, match=message):
        parse_notebook(data)


def test_parse_does_not_keep_the_callers_data() -> None:
    data = notebook()
    parsed = parse_notebook(data)
    parsed.cells[0].source = "changed"
    assert data["cells"][0]["source"] == "# Title"


def test_snapshot_drops_trust_and_optionally_outputs() -> None:
    parsed = parse_notebook(notebook(signature="sha256:abc", widgets={"state": {}}))
    kept = make_snapshot(parsed, include_outputs=True)
    assert "trusted" not in kept.cells[1].metadata and kept.cells[1].metadata.tags == ["keep"]
    assert kept.cells[1].outputs and "signature" not in kept.metadata
    assert "widgets" in kept.metadata
    bare = make_snapshot(parsed, include_outputs=False)
    assert bare.cells[1].outputs == [] and bare.cells[1].execution_count is None
    assert "widgets" not in bare.metadata
    assert parsed.cells[1].metadata.trusted is True  # the original is untouched
    nbformat.validate(nbformat.reads(serialize(bare).decode(), as_version=4))


def test_environment_comes_from_studiohub_metadata() -> None:
    parsed = parse_notebook(notebook(studiohub={"image": "pytorch", "size": "medium"},
                                     kernelspec={"name": "studiohub-pytorch",
                                                 "display_name": "PyTorch 2.13 · CPU"}))
    assert environment_of(parsed) == Environment("pytorch", "medium", "PyTorch 2.13 · CPU")


def test_environment_ignores_what_is_not_a_catalog_id() -> None:
    parsed = parse_notebook(notebook(studiohub={"image": "<b>x</b>", "size": 4}))
    assert environment_of(parsed) == Environment()
    assert environment_of(parse_notebook(notebook(studiohub="pytorch"))) == Environment()
