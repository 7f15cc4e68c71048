"""The one place user input becomes unix and cgroup names: its guarantees."""

from __future__ import annotations

import re

import pytest

from studiohub.slugs import cgroup_name, is_safe, safe_slug, unix_name

UNIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]*$")


@pytest.mark.parametrize("name", ["alice", "bob-2", "a", "0day"])
def test_safe_names_are_kept(name: str) -> None:
    assert safe_slug(name) == name
    assert unix_name(name) == f"jupyter-{name}"


@pytest.mark.parametrize("name, slug", [
    ("Alice", "alice--3bc51062"),
    ("alice@example.com", "alice-example-com--ff8d9819"),
    ("a--b", "a-b--90827a2e"),
    ("../../etc", "etc--74ccf3c5"),
    ("", "x--e3b0c442"),
    ("émile", "mile--a56b363c"),
])
def test_other_names_get_a_hash(name: str, slug: str) -> None:
    assert safe_slug(name) == slug


def test_case_variants_and_lookalikes_stay_distinct() -> None:
    names = ["alice", "Alice", "ALICE", "alice.", "alice_", "alice-", "a.lice", "a_lice"]
    assert len({safe_slug(n) for n in names}) == len(names)
    assert len({unix_name(n) for n in names}) == len(names)


def test_a_kept_name_never_equals_a_hashed_one() -> None:
    hashed = safe_slug("Alice")
    assert "--" in hashed
    assert not is_safe(hashed, 63)  # so no user called "alice--3bc51062" can keep that name
    assert safe_slug(hashed) != hashed


def test_unix_names_fit_useradd() -> None:
    for name in ["x" * 24, "x" * 25, "Very.Long.Name@Example.Organisation.org", "root", "-rf"]:
        account = unix_name(name)
        assert len(account) <= 32, account
        assert UNIX_NAME.match(account), account
    assert unix_name("x" * 24) == "jupyter-" + "x" * 24
    assert unix_name("x" * 25) == "jupyter-xxxxxxxxxxxxxx--c28e601c"


def test_hub_users_never_map_to_system_accounts() -> None:
    assert unix_name("root") == "jupyter-root"
    assert unix_name("root", prefix="u-") == "u-root"
    with pytest.raises(ValueError, match="prefix"):
        unix_name("alice", prefix="")


def test_cgroup_names_separate_user_and_server() -> None:
    assert cgroup_name("alice") == "jupyter-alice"
    assert cgroup_name("alice", "gpu") == "jupyter-alice_gpu"
    assert cgroup_name("alice_gpu") != cgroup_name("alice", "gpu")
    assert cgroup_name("tasks") == "jupyter-tasks"
    assert "/" not in cgroup_name("../x", "../../y")
