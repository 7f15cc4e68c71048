"""Which image and size a notebook's kernel starts on (recorded or saved), the shape check
of a recorded choice (the hub's placement is the one verdict on it), and where a kernel
runs, as the toolbar reports it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from studiohub_lab.errors import LabError
from studiohub_lab.switching import choices
from studiohub_lab.switching.choices import ChoiceBook, KernelChoice, book_of, kernel_report

GIB = 1024**3


def write_notebook(path: Path, metadata: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": [], "metadata": metadata, "nbformat": 4,
                                "nbformat_minor": 5}))


@pytest.fixture
def book(tmp_path: Path) -> ChoiceBook:
    book = ChoiceBook()
    book.root_dir = str(tmp_path)
    return book


# --- ChoiceBook.for_kernel ----------------------------------------------------------------


def test_kernels_of_other_specs_are_never_placed(book: ChoiceBook, tmp_path: Path) -> None:
    write_notebook(tmp_path / "a.ipynb", {"studiohub": {"image": "base", "size": "half"}})
    book.record("a.ipynb", KernelChoice("base", "tiny"))
    assert book.for_kernel("a.ipynb", "python3") is None
    assert book.for_kernel("a.ipynb", "studiohub") is None  # the prefix is "studiohub-"


def test_no_session_name_or_no_choice_means_the_server_s_size(book: ChoiceBook,
                                                               tmp_path: Path) -> None:
    write_notebook(tmp_path / "plain.ipynb", {"kernelspec": {"name": "studiohub-base"}})
    assert book.for_kernel(None, "studiohub-base") is None
    assert book.for_kernel("", "studiohub-base") is None
    assert book.for_kernel("plain.ipynb", "studiohub-base") is None
    assert book.for_kernel("missing.ipynb", "studiohub-base") is None


def test_recorded_choice_outranks_the_saved_one(book: ChoiceBook, tmp_path: Path) -> None:
    write_notebook(tmp_path / "sub" / "a.ipynb", {"studiohub": {"image": "base", "size": "half"}})
    assert book.for_kernel("sub/a.ipynb", "studiohub-base") == \
        KernelChoice("base", "half", saved=True)
    book.record("/sub/a.ipynb", KernelChoice("base", "tiny", replaces="old-kernel"))
    assert book.for_kernel("sub/a.ipynb", "studiohub-base") == \
        KernelChoice("base", "tiny", "old-kernel", saved=False)


def test_a_refused_choice_is_forgotten_for_the_file_s(book: ChoiceBook, tmp_path: Path) -> None:
    write_notebook(tmp_path / "a.ipynb", {"studiohub": {"image": "base", "size": "half"}})
    book.record("a.ipynb", KernelChoice("base", "giant", replaces="old-kernel"))
    book.forget(str(tmp_path / "a.ipynb"))  # JPY_SESSION_NAME may be absolute
    assert book.for_kernel("a.ipynb", "studiohub-base") == \
        KernelChoice("base", "half", saved=True)
    book.forget("never-chosen.ipynb")  # nothing to forget: no error


def test_the_image_is_the_kernel_s_own(book: ChoiceBook) -> None:
    """The kernel name decides the image; the choice only contributes the size."""
    book.record("a.ipynb", KernelChoice("base", "tiny"))
    assert book.for_kernel("a.ipynb", "studiohub-pytorch") == KernelChoice("pytorch", "tiny")


def test_absolute_session_paths_under_the_root(book: ChoiceBook, tmp_path: Path) -> None:
    write_notebook(tmp_path / "runs" / "b.ipynb", {"studiohub": {"image": "base",
                                                                 "size": "half"}})
    absolute = str(tmp_path / "runs" / "b.ipynb")
    assert book.relative(absolute) == "runs/b.ipynb"
    assert book.for_kernel(absolute, "studiohub-base") == KernelChoice("base", "half",
                                                                       saved=True)
    book.record("runs/b.ipynb", KernelChoice("base", "tiny"))
    assert book.for_kernel(absolute, "studiohub-base") == KernelChoice("base", "tiny")


def test_session_paths_outside_the_root_are_ignored(book: ChoiceBook, tmp_path: Path) -> None:
    root = tmp_path / "home"
    root.mkdir()
    book.root_dir = str(root)
    outside = tmp_path / "elsewhere.ipynb"
    write_notebook(outside, {"studiohub": {"image": "base", "size": "half"}})
    assert book.relative(str(outside)) == ""
    assert book.for_kernel(str(outside), "studiohub-base") is None
    # Not even through a recorded choice of the same relative name.
    book.record("elsewhere.ipynb", KernelChoice("base", "tiny"))
    assert book.for_kernel(str(outside), "studiohub-base") is None
    assert book.for_kernel("../elsewhere.ipynb", "studiohub-base") is None


# --- saved_choice -------------------------------------------------------------------------


def test_saved_choice_reads_the_notebook_metadata(tmp_path: Path) -> None:
    write_notebook(tmp_path / "n.ipynb", {"studiohub": {"image": "pytorch", "size": "medium"},
                                          "kernelspec": {"name": "studiohub-pytorch"}})
    assert choices.saved_choice(tmp_path, "/n.ipynb") == \
        KernelChoice("pytorch", "medium", saved=True)


def test_saved_choice_without_an_image_keeps_the_size(tmp_path: Path) -> None:
    write_notebook(tmp_path / "n.ipynb", {"studiohub": {"size": "medium"}})
    assert choices.saved_choice(tmp_path, "n.ipynb") == KernelChoice("", "medium", saved=True)


@pytest.mark.parametrize("name, text", [
    ("n.ipynb", "{not json"),
    ("n.ipynb", "[1, 2]"),
    ("n.ipynb", json.dumps({"metadata": []})),
    ("n.ipynb", json.dumps({"metadata": {"studiohub": "half"}})),
    ("n.ipynb", json.dumps({"metadata": {"studiohub": {"image": "base", "size": 2}}})),
    ("n.ipynb", json.dumps({"metadata": {"studiohub": {"image": "base"}}})),
    ("n.py", json.dumps({"metadata": {"studiohub": {"image": "base", "size": "half"}}})),
    ("n.ipynb", b"\xff\xfe binary"),
])
def test_saved_choice_ignores_what_is_not_a_notebook_with_a_choice(
        tmp_path: Path, name: str, text: str | bytes) -> None:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    assert choices.saved_choice(tmp_path, name) is None


def test_saved_choice_stays_under_the_root(tmp_path: Path) -> None:
    root = tmp_path / "home"
    root.mkdir()
    write_notebook(tmp_path / "secret.ipynb", {"studiohub": {"image": "base", "size": "half"}})
    assert choices.saved_choice(root, "../secret.ipynb") is None
    (root / "link.ipynb").symlink_to(tmp_path / "secret.ipynb")
    assert choices.saved_choice(root, "link.ipynb") is None
    (root / "dir.ipynb").mkdir()
    assert choices.saved_choice(root, "dir.ipynb") is None


def test_saved_choice_skips_huge_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_notebook(tmp_path / "n.ipynb", {"studiohub": {"image": "base", "size": "half"}})
    assert choices.saved_choice(tmp_path, "n.ipynb") is not None
    monkeypatch.setattr(choices, "MAX_NOTEBOOK_BYTES", 10)
    assert choices.saved_choice(tmp_path, "n.ipynb") is None


# --- ChoiceBook.choose: recording checks the shape only --------------------------------

OPTIONS = {
    "images": [{"id": "base", "label": "Base Python 3.11 · CPU", "kernel_name": "studiohub-base"},
               {"id": "pytorch", "label": "PyTorch 2.13 · CPU",
                "kernel_name": "studiohub-pytorch"}],
    "sizes": [{"id": "tiny", "label": "1 vCPU + 512 MiB"},
              {"id": "giant", "label": "1 vCPU + 4 TiB"}],
    "unavailable": {"pytorch/giant": "needs 4 TiB; this machine has 23.5 GiB"},
}
OLD = "0b0a5d6e-1c2f-4b3a-9d8e-7f6a5b4c3d2e"


def test_a_choice_gives_its_kernel_and_the_labels_the_picker_saw(book: ChoiceBook) -> None:
    book.remember_labels(OPTIONS)
    assert book.choose("nb/a.ipynb", "pytorch", "tiny", OLD) == {
        "kernel_name": "studiohub-pytorch", "image": "pytorch", "size": "tiny",
        "image_label": "PyTorch 2.13 · CPU", "size_label": "1 vCPU + 512 MiB"}
    assert book.by_path["nb/a.ipynb"] == KernelChoice("pytorch", "tiny", OLD)


def test_a_choice_is_recorded_without_asking_anyone(book: ChoiceBook) -> None:
    """Whether this user may have it, and whether there is room, is the hub's one check
    when the kernel is placed: the book does not judge (no labels seen: the ids)."""
    answer = book.choose("a.ipynb", "pytorch", "giant", None)
    assert (answer["image_label"], answer["size_label"]) == ("pytorch", "giant")
    assert book.for_kernel("a.ipynb", "studiohub-pytorch") == KernelChoice("pytorch", "giant")


@pytest.mark.parametrize("path, image, size, replaces, message", [
    ("a.ipynb", None, "tiny", None, "image None is not a catalog id"),
    ("a.ipynb", 7, "tiny", None, "image 7 is not a catalog id"),
    # Any JSON value can be sent: a list or an object is a 400 too, never a 500.
    ("a.ipynb", "base", ["tiny"], None, "size ['tiny'] is not a catalog id"),
    ("a.ipynb", {"id": "base"}, "tiny", None, "image {'id': 'base'} is not a catalog id"),
    ("a.ipynb", "x" * 5000, "tiny", None, "image 'xxxxx"),
    ("a.ipynb", "base", "tiny", "not-a-kernel", "replaces 'not-a-kernel' is not a kernel id"),
    ("a.txt", "base", "tiny", None, "path: the notebook's path (ending in .ipynb)"),
    ("../../etc/x.ipynb", "base", "tiny", None,
     "path '../../etc/x.ipynb' is outside this server's root"),
    ("a\0.ipynb", "base", "tiny", None, "path: the notebook's path"),
])
def test_a_choice_of_the_wrong_shape_is_a_400_and_records_nothing(
        book: ChoiceBook, path: Any, image: Any, size: Any, replaces: Any,
        message: str) -> None:
    with pytest.raises(LabError) as e:
        book.choose(path, image, size, replaces)
    assert e.value.status == 400 and e.value.message.startswith(message)
    assert len(e.value.message) < 300  # a long value is quoted by its prefix only
    assert book.by_path == {}


def test_the_provisioner_finds_the_server_s_book_through_its_parents() -> None:
    class Node:
        def __init__(self, parent: Any = None) -> None:
            self.parent = parent

    server_manager = Node()
    provisioner = Node(Node(server_manager))  # provisioner → kernel manager → server's
    assert book_of(provisioner) is None
    book = ChoiceBook()
    choices.attach(server_manager, book)
    assert book_of(provisioner) is book


# --- kernel_report ------------------------------------------------------------------------

SERVER_ENV = {"STUDIOHUB_IMAGE": "base", "STUDIOHUB_IMAGE_LABEL": "Base Python 3.11 · CPU",
              "STUDIOHUB_SIZE": "medium", "STUDIOHUB_SIZE_LABEL": "2 vCPU + 4 GiB",
              "STUDIOHUB_CPU_LIMIT": "2", "STUDIOHUB_MEM_LIMIT": "4G",
              "STUDIOHUB_GPU_LIMIT": "0"}


@pytest.fixture
def fresh_book() -> ChoiceBook:
    return ChoiceBook()


def test_report_of_a_placed_kernel(fresh_book: ChoiceBook) -> None:
    fresh_book.placed["k1"] = {
        "kernel_id": "k1", "image": "pytorch", "size": "tiny",
        "image_label": "PyTorch 2.13 · CPU", "size_label": "1 vCPU + 512 MiB",
        "limits": {"cpus": 1, "memory": 512 * 1024**2, "gpus": 0}, "procs": ["/x"]}
    assert kernel_report(fresh_book, "k1", "studiohub-pytorch", SERVER_ENV) == {
        "choice": {"image": "pytorch", "size": "tiny", "image_label": "PyTorch 2.13 · CPU",
                   "size_label": "1 vCPU + 512 MiB",
                   "limits": {"cpus": 1, "memory": 512 * 1024**2, "gpus": 0}, "placed": True},
        "fallback": None}


def test_report_of_a_kernel_within_the_server_s_size(fresh_book: ChoiceBook) -> None:
    assert kernel_report(fresh_book, "k2", "studiohub-base", SERVER_ENV) == {
        "choice": {"image": "base", "size": "medium", "image_label": "Base Python 3.11 · CPU",
                   "size_label": "2 vCPU + 4 GiB",
                   "limits": {"cpus": 2.0, "memory": 4 * GIB, "gpus": 0}, "placed": False},
        "fallback": None}


def test_report_of_another_image_s_kernel_does_not_borrow_the_server_s_label(
        fresh_book: ChoiceBook) -> None:
    choice = kernel_report(fresh_book, "k3", "studiohub-pytorch", SERVER_ENV)["choice"]
    assert (choice["image"], choice["image_label"], choice["size"]) == \
        ("pytorch", None, "medium")
    other = kernel_report(fresh_book, "k4", "python3", SERVER_ENV)["choice"]
    assert other["image"] is None and other["image_label"] is None


def test_report_without_studiohub_env_or_with_bad_limits(fresh_book: ChoiceBook) -> None:
    assert kernel_report(fresh_book, "k5", "studiohub-base", {})["choice"] == {
        "image": "base", "size": None, "image_label": None, "size_label": None,
        "limits": {"cpus": None, "memory": None, "gpus": 0}, "placed": False}
    bad = {**SERVER_ENV, "STUDIOHUB_CPU_LIMIT": "lots", "STUDIOHUB_MEM_LIMIT": "much"}
    assert kernel_report(fresh_book, "k6", "studiohub-base", bad)["choice"]["limits"] == \
        {"cpus": None, "memory": None, "gpus": 0}


def test_report_carries_the_fallback_of_a_saved_choice(fresh_book: ChoiceBook) -> None:
    why = {"image": "base", "size": "giant", "reason": "needs 4 TiB; this machine has 23.5 GiB"}
    fresh_book.fallbacks["k7"] = why
    report = kernel_report(fresh_book, "k7", "studiohub-base", SERVER_ENV)
    assert report["fallback"] == why and report["choice"]["placed"] is False
