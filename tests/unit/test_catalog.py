"""The catalog refuses bad files with file + key + problem, and validates choices."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from studiohub.catalog import CatalogError, ChoiceError, load_catalog, merge
from studiohub.cli import main
from studiohub.units import format_memory, kube_memory, parse_memory


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_builtin_catalog_has_the_default_images_and_sizes() -> None:
    catalog = load_catalog()
    assert {"base", "tensorflow", "pytorch", "mxnet", "tensorflow-gpu", "pytorch-gpu",
            "mxnet-gpu"} <= set(catalog.images)
    assert catalog.sizes["medium"].display_name == "2 vCPU + 4 GiB"
    assert catalog.sizes["medium"].memory == 4 * 1024**3
    assert catalog.sizes["gpu-medium"].display_name == "4 vCPU + 16 GiB + 1 GPU"
    for image in catalog.images.values():
        assert all(p.is_file() for p in image.requirements), image.id


def test_gpu_images_only_on_gpu_sizes() -> None:
    catalog = load_catalog()
    pairs = {(c.image.id, c.size.id) for c in catalog.allowed_pairs(["ml-research"])}
    assert ("pytorch-gpu", "gpu-medium") in pairs
    assert ("pytorch-gpu", "medium") not in pairs
    assert ("pytorch", "gpu-medium") in pairs


def test_label_reads_like_the_toolbar() -> None:
    choice = load_catalog().choose([], {"image": "pytorch", "size": "medium"})
    assert choice.label == "PyTorch 2.13 · CPU · 2 vCPU + 4 GiB"


def test_domains_limit_choices_and_default_domain_applies() -> None:
    catalog = load_catalog()
    assert [d.id for d in catalog.domains_for(["some-other-group"])] == ["everyone"]
    with pytest.raises(ChoiceError) as e:
        catalog.choose([], {"image": "pytorch-gpu"})
    assert str(e.value) == ("image 'pytorch-gpu' is not allowed in your domains (everyone): "
                            "allowed images are base, mxnet, pytorch, tensorflow")
    assert catalog.choose(["ml-research"], {"image": "pytorch-gpu"}).size.gpus == 1


@pytest.mark.parametrize(("options", "message"), [
    ({"image": "base", "flavor": "x"}, "unknown option(s) 'flavor': allowed options are"),
    ({"size": "huge"}, "unknown size 'huge': allowed values are large, medium, small"),
    ({"image": 3}, "unknown image 3: allowed values are"),
])
def test_choice_errors_name_the_allowed_values(options: dict, message: str) -> None:
    with pytest.raises(ChoiceError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        load_catalog().choose([], options)


def test_size_that_cannot_run_image_says_which_can() -> None:
    with pytest.raises(ChoiceError) as e:
        load_catalog().choose(["ml-research"], {"image": "mxnet-gpu", "size": "large"})
    assert str(e.value) == ("size 'large' cannot run image 'mxnet-gpu' (it has no GPU); "
                            "sizes that can: gpu-large, gpu-medium")


def test_missing_options_take_the_defaults() -> None:
    assert load_catalog().choose([], {}).as_options() == {"image": "base", "size": "medium"}


def test_operator_file_merges_adds_and_removes(tmp_path: Path) -> None:
    path = write(tmp_path, {
        "sizes": {"tiny": {"display_name": "1 vCPU + 512 MiB", "cpus": 1, "memory": "512M"},
                  "xlarge": None},
        "domains": {"everyone": {"sizes": ["tiny", "small"]}},
    })
    catalog = load_catalog(path)
    assert "xlarge" not in catalog.sizes
    assert catalog.sizes["tiny"].memory == 512 * 1024**2
    assert [s.id for s in catalog.allowed_sizes([])] == ["small", "tiny"]
    assert catalog.source == str(path)


@pytest.mark.parametrize(("override", "key", "problem"), [
    ({"sizes": {"small": {"memory": "4 gigs"}}}, "sizes.small.memory",
     "'4 gigs' is not a memory size"),
    ({"sizes": {"small": {"cpus": -1}}}, "sizes.small.cpus", "-1 is less than or equal to"),
    ({"sizes": {"small": {"colour": "red"}}}, "sizes.small",
     "Additional properties are not allowed ('colour' was unexpected); allowed keys:"),
    ({"images": {"base": {"accelerator": "tpu"}}}, "images.base.accelerator",
     "'tpu' is not one of ['cpu', 'gpu']"),
    ({"images": {"base": {"requirements": ["nope/requirements.txt"]}}},
     "images.base.requirements.0", "requirement file 'nope/requirements.txt' not found"),
    ({"domains": {"everyone": {"sizes": ["enormous"]}}}, "domains.everyone.sizes.0",
     "'enormous' matches nothing: defined are"),
    ({"defaults": {"image": "julia"}}, "defaults.image", "unknown image 'julia'"),
    ({"sizes": {"Big Size": {"display_name": "x", "cpus": 1, "memory": "1G"}}}, "sizes",
     "'Big Size' is not a valid id"),
    ({"sizes": {"small": {"images": ["pytorch-gpu"]}}}, "sizes.small.images",
     "GPU image 'pytorch-gpu' needs a size with gpus > 0"),
])
def test_bad_catalog_names_file_key_and_problem(tmp_path: Path, override: dict, key: str,
                                                 problem: str) -> None:
    path = write(tmp_path, override)
    with pytest.raises(CatalogError) as e:
        load_catalog(path)
    assert e.value.source == str(path)
    assert e.value.key == key
    assert problem in e.value.problem
    assert str(e.value).startswith(f"catalog {path}: {key}: ")


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("images: [unclosed\n")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(bad)
    with pytest.raises(CatalogError, match="file not found"):
        load_catalog(tmp_path / "absent.yaml")
    with pytest.raises(CatalogError, match="cannot be read: Is a directory"):
        load_catalog(tmp_path)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("images: {caf\xe9: {}}\n".encode("latin-1"))
    with pytest.raises(CatalogError, match="not UTF-8 text"):
        load_catalog(latin)


def test_cli_catalog_check(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIOHUB_PREFIX", str(tmp_path / "empty-prefix"))
    monkeypatch.delenv("STUDIOHUB_CATALOG", raising=False)
    monkeypatch.delenv("STUDIOHUB_CONFIG", raising=False)
    assert main(["catalog", "check"]) == 0
    assert "OK — 7 images, 6 sizes, 2 domains" in capsys.readouterr().out
    path = write(tmp_path, {"defaults": {"size": "galactic"}})
    assert main(["catalog", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"error: catalog {path}: defaults.size: unknown size 'galactic'" in err


def test_every_problem_is_reported_in_one_run(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Two typos and a bad reference: all three named with their paths, in file order."""
    path = write(tmp_path, {
        "images": {"base": {"descripton": "x"}, "pytorch": {"dispaly_name": "y"}},
        "defaults": {"size": "galactic"},
    })
    with pytest.raises(CatalogError) as e:
        load_catalog(path)
    keys = [key for key, _ in e.value.problems]
    assert keys == ["images.base", "images.pytorch"]
    assert "'descripton' was unexpected" in e.value.problems[0][1]
    assert "'dispaly_name' was unexpected" in e.value.problems[1][1]
    assert main(["catalog", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"error: catalog {path}: 2 problems:" in err
    assert "\n  images.base: Additional properties are not allowed ('descripton'" in err
    assert "\n  images.pytorch: Additional properties are not allowed ('dispaly_name'" in err


def test_semantic_problems_are_all_collected(tmp_path: Path) -> None:
    path = write(tmp_path, {
        "images": {"base": {"requirements": ["nope/requirements.txt"]}},
        "sizes": {"small": {"memory": "lots"}},
        "domains": {"everyone": {"sizes": ["enormous"]}},
        "defaults": {"image": "julia"},
    })
    with pytest.raises(CatalogError) as e:
        load_catalog(path)
    assert [key for key, _ in e.value.problems] == [
        "images.base.requirements.0", "sizes.small.memory", "domains.everyone.sizes.0",
        "defaults.image"]


def test_images_as_a_list_is_a_clear_error(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text("images:\n  - base\n  - pytorch\n")
    with pytest.raises(CatalogError) as e:
        load_catalog(path)
    assert e.value.key == "images"
    assert "is not of type 'object'" in e.value.problem
    assert main(["catalog", "check", str(path)]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert f"error: catalog {path}: images: ['base', 'pytorch'] is not of type 'object'" \
        in captured.err


def test_a_file_that_is_not_yaml_is_one_clear_error(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text("images: {base: [\n\tsizes: ]]\n")
    assert main(["catalog", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert f"error: catalog {path}: (top level): not valid YAML" in err


def test_merge_deletes_with_none_and_copies() -> None:
    base = {"a": {"b": 1, "c": 2}, "d": [1]}
    merged = merge(base, {"a": {"b": None, "e": 3}, "d": [2]})
    assert merged == {"a": {"c": 2, "e": 3}, "d": [2]}
    assert base == {"a": {"b": 1, "c": 2}, "d": [1]}


@pytest.mark.parametrize(("text", "size"), [
    ("4G", 4 * 1024**3), ("4GiB", 4 * 1024**3), ("4Gi", 4 * 1024**3), ("512M", 512 * 1024**2),
    ("1.5G", int(1.5 * 1024**3)), (1000, 1000), ("2048", 2048),
])
def test_parse_memory(text: str | int, size: int) -> None:
    assert parse_memory(text) == size


def test_memory_formats() -> None:
    assert format_memory(4 * 1024**3) == "4 GiB"
    assert format_memory(512 * 1024**2) == "512 MiB"
    assert kube_memory(4 * 1024**3) == "4Gi"
    assert kube_memory(1500) == "1500"


def test_a_huge_bad_value_is_quoted_short() -> None:
    from studiohub.catalog import ChoiceError, quote_value

    catalog = load_catalog()
    with pytest.raises(ChoiceError) as e:
        catalog.choose([], {"image": "x" * 20_000_000})
    assert len(str(e.value)) < 300
    assert str(e.value).startswith("unknown image 'xxxx")
    assert "(20000000 characters)" in str(e.value)
    with pytest.raises(ChoiceError) as e:
        catalog.choose([], {"y" * 10_000: "base"})
    assert len(str(e.value)) < 300
    assert quote_value("base") == "'base'"
    assert quote_value(["a"] * 100).endswith("(500 characters)")


def test_refusals_mark_allowed_values_that_would_still_be_refused_here() -> None:
    """A 400's list of allowed values says which of them would then be a 409."""
    catalog = load_catalog()

    def note(kind: str, item: str) -> str | None:
        return {("image", "pytorch"): "not built here",
                ("size", "large"): "too big for this machine"}.get((kind, item))

    with pytest.raises(ChoiceError) as e:
        catalog.choose([], {"image": "julia"}, note=note)
    assert str(e.value) == ("unknown image 'julia': allowed values are base, mxnet, "
                            "pytorch (not built here), tensorflow")
    with pytest.raises(ChoiceError) as e:
        catalog.choose(["ml-research"], {"image": "mxnet-gpu", "size": "tiny"}, note=note)
    assert "allowed values are gpu-large, gpu-medium, large (too big for this machine)" \
        in str(e.value)
    with pytest.raises(ChoiceError) as e:
        catalog.choose([], {"size": "gpu-medium"}, note=note)
    assert str(e.value) == ("size 'gpu-medium' is not allowed in your domains (everyone): "
                            "allowed sizes are large (too big for this machine), medium, small")


def test_catalog_check_reads_the_catalog_the_hub_reads(tmp_path: Path, capsys:
                                                       pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a file it checks etc/catalog.yaml (what the hub merges), not the built-in
    one: a newcomer who edited etc/catalog.yaml was told "OK" about another file."""
    from studiohub.installer import OPERATOR_CATALOG

    monkeypatch.setenv("STUDIOHUB_PREFIX", str(tmp_path))
    monkeypatch.delenv("STUDIOHUB_CATALOG", raising=False)
    monkeypatch.delenv("STUDIOHUB_CONFIG", raising=False)
    (tmp_path / "etc").mkdir()
    operator = tmp_path / "etc" / "catalog.yaml"
    operator.write_text(OPERATOR_CATALOG)  # what `studiohub up` writes: the built-in catalog
    assert main(["catalog", "check"]) == 0
    assert f"{operator}: OK — 7 images, 6 sizes, 2 domains" in capsys.readouterr().out
    operator.write_text("domains: {vision: {display_name: Vision, sizes: [smal]}}\n")
    assert main(["catalog", "check"]) == 1
    assert f"catalog {operator}: domains.vision.sizes.0: 'smal'" in capsys.readouterr().err
