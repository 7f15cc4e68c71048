"""The pure parts of the models service: names, the traffic split, model paths."""

from __future__ import annotations

from typing import Any

import pytest

from studiohub.serving import model as m
from studiohub.serving.model import EndpointError
from studiohub.serving.service import check_model_path


def endpoint(live: int | None, canary: int | None = None, percent: int = 0,
             statuses: dict[int, str] | None = None) -> dict[str, Any]:
    statuses = statuses or {}
    return {"live": live, "canary": canary, "canary_percent": percent,
            "versions": [{"version": n, "status": s} for n, s in statuses.items()]}


def test_names_are_dns_like_and_not_the_service_routes() -> None:
    assert m.check_name("iris-2") == "iris-2"
    for bad in ("Iris", "2iris", "", "a" * 41, "api", "oauth_callback", "a/b", None, 7):
        with pytest.raises(EndpointError) as e:
            m.check_name(bad)
        assert e.value.status == 400


def test_the_split_gives_the_canary_its_share_and_the_live_version_the_rest() -> None:
    assert m.shares(endpoint(None)) == {}
    assert m.shares(endpoint(1)) == {1: 100}
    assert m.shares(endpoint(1, 2, 10)) == {1: 90, 2: 10}
    assert m.shares(endpoint(1, 2, 0)) == {1: 100}
    assert m.shares(endpoint(1, 2, 100)) == {2: 100}


def test_status_and_the_version_a_rollback_returns_to() -> None:
    e = endpoint(3, statuses={1: m.RETIRED, 2: m.FAILED, 3: m.SERVING, 4: m.STARTING})
    assert m.status(e) == "updating"
    assert m.previous(e)["version"] == 1  # the failed one is skipped
    assert m.next_version(e) == 5
    assert m.status(endpoint(None, statuses={1: m.FAILED})) == "failed"
    assert m.status(endpoint(None, statuses={1: m.STARTING})) == "starting"


def test_a_rollback_returns_to_the_version_that_served_before() -> None:
    """v1 → v2 → rollback (v1) → v3 → rollback: v1 again, the version that served just
    before v3, not the newer v2 the first rollback left."""
    e = endpoint(None, statuses={1: m.STARTING})
    m.promote(e, 1)
    e["versions"].append({"version": 2, "status": m.STARTING})
    m.promote(e, 2)
    assert (e["live"], m.version_status(e, m.version(e, 1))) == (2, m.DRAINING)
    assert m.previous(e)["version"] == 1  # draining: a rollback takes it back at once
    m.version(e, 1)["status"] = m.RETIRED
    assert m.previous(e)["version"] == 1
    m.version(e, 1).update(status=m.STARTING, restored=True)  # the rollback restarts it
    m.promote(e, 1)
    m.version(e, 2)["status"] = m.RETIRED
    assert e["live"] == 1 and m.previous(e) is None  # nothing served before v1
    e["versions"].append({"version": 3, "status": m.STARTING})
    m.promote(e, 3)
    m.version(e, 1)["status"] = m.RETIRED
    assert m.previous(e)["version"] == 1


@pytest.mark.parametrize("value, expected", [
    ("models/net", "models/net"),
    ("models/./net/", "models/net"),
    ({"job": "0123456789ab", "path": "model"}, "studiohub-jobs/0123456789ab/outputs/model"),
    ({"job": "0123456789ab"}, "studiohub-jobs/0123456789ab/outputs"),
])
def test_model_paths_stay_in_the_home(value: Any, expected: str) -> None:
    assert check_model_path(value) == expected


@pytest.mark.parametrize("value", ["", "   ", "../x", "a/../../x", "/etc/passwd", "..",
                                   "a\0b", 7, None, {"job": "../x"}, {"job": 3},
                                   "x" * 2000])
def test_bad_model_paths_are_refused(value: Any) -> None:
    with pytest.raises(EndpointError) as e:
        check_model_path(value)
    assert e.value.status == 400


@pytest.mark.parametrize("value", [-1, 101, 1.5, "10", True])
def test_percentages_and_replicas_are_whole_numbers_in_range(value: Any) -> None:
    with pytest.raises(EndpointError):
        m.check_percent(value)
    with pytest.raises(EndpointError):
        m.check_replicas(value if value != 1.5 else 0)


@pytest.mark.parametrize("bad", ["x" * 101, "two\nlines", 7, ["ci"]])
def test_a_tokens_note_is_one_short_printable_line(bad: object) -> None:
    assert m.token_note(" ci pipeline ") == "ci pipeline"
    assert m.token_note(None) == ""
    with pytest.raises(m.EndpointError, match="note: one line of at most 100") as refused:
        m.token_note(bad)
    assert refused.value.status == 400
