"""The service's decisions without HTTP: limits, versions, revocation, refusals, files."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from tornado import web

from studiohub.catalog import load_catalog
from studiohub.sharing.access import Refusal, check_can_view, user_domains
from studiohub.sharing.base import check_model, error_message
from studiohub.sharing.service import Limits, Sharing, Viewer
from studiohub.sharing.snapshots import SnapshotFiles
from studiohub.sharing.store import Store
from studiohub.sharing.workspace import candidate_names
from tests.sharinghub import code_cell, make_notebook, stream


@pytest.fixture
def sharing(tmp_path: Path) -> Sharing:
    return Sharing(Store(f"sqlite:///{tmp_path / 'db.sqlite'}"),
                   SnapshotFiles(tmp_path / "snapshots"),
                   Limits(max_notebook_bytes=200_000, max_shares_per_user=2,
                          max_versions_per_share=2), load_catalog())


ADA = Viewer("ada", ["ml-research"])
BO = Viewer("bo", ["ml-research"])
CY = Viewer("cy", ["everyone"])


def notebook(text: str = "hi") -> dict[str, Any]:
    return make_notebook(code_cell("print(1)", stream(text)), image="pytorch", size="medium")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def refused(status: int, call: Callable[[], Any], fragment: str = "") -> str:
    with pytest.raises(Refusal) as info:
        result = call()
        if asyncio.iscoroutine(result):
            run(result)
    assert info.value.status_code == status
    assert fragment in info.value.message
    return info.value.message


def test_share_writes_files_rows_and_an_event(sharing: Sharing) -> None:
    share = run(sharing.share(ADA, "ml-research", "a.ipynb", notebook(), True, "note"))
    assert len(share.id) == 22
    folder = sharing.files.root / share.id
    assert sorted(p.name for p in folder.iterdir()) == ["1.html", "1.ipynb"]
    assert stat.S_IMODE(os.stat(folder / "1.ipynb").st_mode) == 0o600
    version = sharing.store.version(share.id, 1)
    assert version is not None
    assert (version.image, version.size, version.note) == ("pytorch", "medium", "note")
    assert [e.action for e in sharing.store.events()] == ["share"]


def test_views_count_others_not_the_author(sharing: Sharing) -> None:
    share = run(sharing.share(ADA, "ml-research", "a.ipynb", notebook(), True, ""))
    sharing.open(ADA, share.id, None)
    sharing.open(BO, share.id, None)
    sharing.open(BO, share.id, 1)
    assert sharing.store.share(share.id).views == 2  # type: ignore[union-attr]


def test_limits_on_shares_and_versions(sharing: Sharing) -> None:
    first = run(sharing.share(ADA, "ml-research", "a.ipynb", notebook(), True, ""))
    run(sharing.share(ADA, "ml-research", "b.ipynb", notebook(), True, ""))
    refused(403, lambda: sharing.share(ADA, "ml-research", "c.ipynb", notebook(), True, ""),
            "you already have 2 shared notebooks")
    run(sharing.publish(ADA, first.id, notebook("v2"), True, ""))
    refused(403, lambda: sharing.publish(ADA, first.id, notebook("v3"), True, ""),
            "already has 2 versions")
    refused(413, lambda: sharing.publish(ADA, first.id, notebook("x" * 300_000), True, ""),
            "the limit is 0.2 MiB")
    assert sharing.store.share(first.id).latest_version == 2  # type: ignore[union-attr]


def test_only_the_author_publishes_and_revokes(sharing: Sharing) -> None:
    share = run(sharing.share(ADA, "ml-research", "a.ipynb", notebook(), True, ""))
    refused(403, lambda: sharing.publish(BO, share.id, notebook(), True, ""), "only the author")
    refused(403, lambda: sharing.revoke(BO, share.id), "only the author")
    refused(403, lambda: sharing.open(CY, share.id, None), "'ML research'")
    sharing.revoke(ADA, share.id)
    assert not (sharing.files.root / share.id).exists()
    refused(410, lambda: sharing.open(BO, share.id, None), "revoked")
    refused(410, lambda: sharing.publish(ADA, share.id, notebook(), True, ""), "revoked")
    actions = [e.action for e in sharing.store.events()]
    assert actions.count("refuse") == 5 and "revoke" in actions


def test_a_refused_row_leaves_no_files(sharing: Sharing, monkeypatch: pytest.MonkeyPatch) -> None:
    share = run(sharing.share(ADA, "ml-research", "a.ipynb", notebook(), True, ""))

    def clash(*_: Any) -> None:
        raise IntegrityError("insert", {}, Exception("duplicate"))

    monkeypatch.setattr(sharing.store, "add_version", clash)
    refused(409, lambda: sharing.publish(ADA, share.id, notebook(), True, ""),
            "published at the same time")
    assert sorted(p.name for p in (sharing.files.root / share.id).iterdir()) == \
        ["1.html", "1.ipynb"]


def test_sharing_to_a_domain_not_ones_own_is_400(sharing: Sharing) -> None:
    refused(400, lambda: sharing.share(CY, "ml-research", "a.ipynb", notebook(), True, ""),
            "your domains: 'everyone'")
    refused(400, lambda: sharing.share(Viewer("zed", []), "x", "a.ipynb", notebook(), True, ""),
            "none: ask an administrator")
    assert sharing.store.events() == []


def test_user_domains_follow_the_catalog() -> None:
    catalog = load_catalog()
    assert user_domains(["ml-research", "not-a-domain"], catalog) == ["ml-research"]
    assert user_domains([], catalog) == ["everyone"]  # the catalog's default domain
    assert user_domains(["b", "a"], None) == ["a", "b"]


def test_refusals_never_name_the_notebook() -> None:
    from tests.unit.test_sharing_store import make_share

    share = make_share("s" * 22, name="secret-plans.ipynb")
    with pytest.raises(Refusal) as info:
        check_can_view(share, "cy", ["everyone"], {"team-a": "Team A"})
    assert "secret" not in info.value.message and "Team A" in info.value.message


def test_check_model_names_the_bad_key() -> None:
    model = {"name": (str, True), "flag": (bool, False), "version": (int, False)}
    check_model({"name": "x"}, model)
    for body, message in (({}, "missing key 'name'"), ({"name": 1}, "'name' must be a string"),
                          ({"name": "x", "flag": 1}, "'flag' must be true or false"),
                          ({"name": "x", "version": True}, "'version' must be an integer"),
                          ({"name": "x", "z": 1}, "unknown key(s) 'z'")):
        with pytest.raises(web.HTTPError) as info:
            check_model(body, model)
        assert info.value.status_code == 400 and message in str(info.value.log_message)


def test_error_messages_are_the_refusals_own_or_generic() -> None:
    refusal = Refusal(403, "100% not allowed")
    assert error_message(403, (Refusal, refusal, None)) == "100% not allowed"
    assert error_message(400, (None, web.HTTPError(400, "bad %s", "x"), None)) == "bad x"
    assert "internal error" in error_message(500, (None, KeyError("secret"), None))
    assert error_message(404, None) == "Not Found"


def test_copies_get_numbered_names() -> None:
    names = candidate_names("report.ipynb")
    assert names[:3] == ["report.ipynb", "report-2.ipynb", "report-3.ipynb"]
    assert len(set(names)) == len(names) == 50


def test_version_zero_is_not_the_latest_and_vanished_files_are_gone(sharing: Sharing) -> None:
    share = run(sharing.share(ADA, "ml-research", "a.ipynb", notebook(), True, ""))
    refused(404, lambda: sharing.pick_version(share, 0), "version 0 does not exist")
    version = sharing.pick_version(share, None)
    sharing.files.remove_share(share.id)  # a revocation between the check and the read
    refused(410, lambda: sharing.notebook_bytes(share, version), "revoked")
    refused(410, lambda: sharing.preview(share, version), "revoked")
