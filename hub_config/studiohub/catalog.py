"""The catalog: images x instance sizes x domains, the single source of truth.

Everything that offers or enforces a choice (spawn form, REST user_options,
KubeSpawner profiles, the Lab picker, the chart's pre-pull list) reads a
:class:`Catalog` loaded here. Loading validates the whole file and refuses a bad
one with a :class:`CatalogError` naming the file, the key and what is wrong.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .units import QuantityError, format_cpus, format_memory, parse_memory

BUILTIN_CATALOG = Path(__file__).with_name("catalog.yaml")

_ID = {"type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"}
_IDS_OR_ALL = {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}
#: A domain's limits on training jobs running at once (absent: no limit).
_JOB_LIMITS: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {"max_running": {"type": "integer", "minimum": 0},
                   "max_cpus": {"type": "number", "minimum": 0},
                   "max_memory": {"type": ["string", "integer"]},
                   "max_gpus": {"type": "integer", "minimum": 0}},
}
# Kubernetes label keys ([prefix/]name) and values, as the API server checks them.
_LABEL_KEY = {"type": "string", "maxLength": 316, "pattern":
              r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
              r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"}
_LABEL_VALUE = {"type": "string", "pattern": r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"}
# Where a size's pods go on Kubernetes; the operator's (ignored by the local mode).
_KUBERNETES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "node_selector": {"type": "object", "propertyNames": _LABEL_KEY,
                          "additionalProperties": _LABEL_VALUE},
        "tolerations": {"type": "array", "items": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "key": _LABEL_KEY,
                "operator": {"enum": ["Exists", "Equal"]},
                "value": _LABEL_VALUE,
                "effect": {"enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]},
                "tolerationSeconds": {"type": "integer"},
            },
        }},
    },
}
_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["images", "sizes", "domains", "defaults"],
    "properties": {
        "images": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": _ID,
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["display_name", "framework", "accelerator", "requirements",
                             "container_image"],
                "properties": {
                    "display_name": {"type": "string", "minLength": 1},
                    "description": {"type": "string"},
                    "framework": {"type": "string", "minLength": 1},
                    "framework_version": {"type": "string"},
                    "accelerator": {"enum": ["cpu", "gpu"]},
                    "requirements": {"type": "array", "minItems": 1,
                                     "items": {"type": "string", "minLength": 1}},
                    "container_image": {"type": "string", "pattern": r"^\S+$"},
                },
            },
        },
        "sizes": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": _ID,
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["display_name", "cpus", "memory"],
                "properties": {
                    "display_name": {"type": "string", "minLength": 1},
                    "cpus": {"type": "number", "exclusiveMinimum": 0},
                    "memory": {"type": ["string", "integer"]},
                    "gpus": {"type": "integer", "minimum": 0},
                    "images": _IDS_OR_ALL,
                    "kubernetes": _KUBERNETES,
                },
            },
        },
        "domains": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": _ID,
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["display_name"],
                "properties": {
                    "display_name": {"type": "string", "minLength": 1},
                    "description": {"type": "string"},
                    "images": _IDS_OR_ALL,
                    "sizes": _IDS_OR_ALL,
                    "members": {"type": "array", "items": {"type": "string", "minLength": 1}},
                    "jobs": {**_JOB_LIMITS, "properties": {**_JOB_LIMITS["properties"],
                                                           "per_user": _JOB_LIMITS}},
                },
            },
        },
        "defaults": {
            "type": "object",
            "additionalProperties": False,
            "required": ["image", "size"],
            "properties": {
                "image": {"type": "string"},
                "size": {"type": "string"},
                "domain": {"type": ["string", "null"]},
            },
        },
    },
}


class CatalogError(ValueError):
    """A catalog that cannot be used: ``<file>: <key>: <what is wrong>``.

    ``problems`` holds every ``(key, problem)`` found in one pass, so an operator fixes
    all of them after one ``studiohub catalog check``; ``key``/``problem`` are the first.
    """

    def __init__(self, source: str, key: str, problem: str,
                 more: Sequence[tuple[str, str]] = ()) -> None:
        self.source, self.key, self.problem = source, key, problem
        self.problems = [(key, problem), *more]
        if len(self.problems) == 1:
            text = f"catalog {source}: {key or '(top level)'}: {problem}"
        else:
            lines = "".join(f"\n  {k or '(top level)'}: {p}" for k, p in self.problems)
            text = f"catalog {source}: {len(self.problems)} problems:{lines}"
        super().__init__(text)

    @classmethod
    def of(cls, source: str, problems: Sequence[tuple[str, str]]) -> CatalogError:
        """One error carrying every problem in ``problems`` (at least one)."""
        (key, problem), *more = problems
        return cls(source, key, problem, more)


class ChoiceError(ValueError):
    """A user's image/size choice the catalog does not allow; the message lists what is."""


#: ``note(kind, id)``: why an allowed image or size (``kind`` "image" or "size") would
#: still be refused on this machine ("not built here"), or None. Refusals mark those in
#: their lists of allowed values, so nobody is sent from a 400 to a 409.
ChoiceNote = Callable[[str, str], "str | None"]


#: Characters of a bad value quoted back in an answer or a log line.
QUOTE_LIMIT = 60


def quote_value(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)``, cut to ``limit`` characters (``…`` and the full length after).

    Refusals name the bad value, but never echo it whole: a 20 MB ``image`` would
    otherwise make a 20 MB answer and as many bytes in every log line that quotes it.
    """
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value)} characters)"
    text = repr(value)
    if len(text) > limit:
        return f"{text[:limit]}… ({len(text)} characters)"
    return text


@dataclass(frozen=True)
class Image:
    """A framework environment: a local venv and a container image from the same requirements."""

    id: str
    display_name: str
    framework: str
    framework_version: str
    accelerator: str
    requirements: tuple[Path, ...]
    container_image: str
    description: str = ""

    @property
    def gpu(self) -> bool:
        return self.accelerator == "gpu"

    @property
    def label(self) -> str:
        """``PyTorch 2.13 · CPU``: what the toolbar and pickers show."""
        name = " ".join(p for p in (self.display_name, self.framework_version) if p)
        if self.framework_version and self.framework_version in self.display_name:
            name = self.display_name
        return f"{name} · {self.accelerator.upper()}"


@dataclass(frozen=True)
class Size:
    """An instance size: the limits a user's server and its kernels run within."""

    id: str
    display_name: str
    cpus: float
    memory: int
    gpus: int = 0
    images: tuple[str, ...] = ("*",)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()

    def can_run(self, image: Image) -> bool:
        """GPU images only on GPU sizes, and only images the size lists."""
        if image.gpu and not self.gpus:
            return False
        return _matches(image.id, self.images)

    @property
    def limits_text(self) -> str:
        text = f"{format_cpus(self.cpus)} + {format_memory(self.memory)}"
        return text + (f" + {self.gpus} GPU" if self.gpus else "")


@dataclass(frozen=True)
class JobLimits:
    """Most a domain's training jobs (or one user's in it) may use at once; None: no limit.

    ``max_running`` counts jobs, the others add up the jobs' replicas' sizes."""

    max_running: int | None = None
    max_cpus: float | None = None
    max_memory: int | None = None
    max_gpus: int | None = None


@dataclass(frozen=True)
class Domain:
    """A team: a JupyterHub group of the same name, and what its members may use."""

    id: str
    display_name: str
    images: tuple[str, ...] = ("*",)
    sizes: tuple[str, ...] = ("*",)
    members: tuple[str, ...] = ()
    description: str = ""
    jobs: JobLimits = JobLimits()
    jobs_per_user: JobLimits = JobLimits()


@dataclass(frozen=True)
class Choice:
    """A validated (image, size) pair."""

    image: Image
    size: Size

    @property
    def label(self) -> str:
        return f"{self.image.label} · {self.size.display_name}"

    def as_options(self) -> dict[str, str]:
        return {"image": self.image.id, "size": self.size.id}


@dataclass(frozen=True)
class Catalog:
    """The loaded, validated catalog. Pure data plus the queries every part needs."""

    images: Mapping[str, Image]
    sizes: Mapping[str, Size]
    domains: Mapping[str, Domain]
    default_image: str
    default_size: str
    default_domain: str | None
    source: str

    def domains_for(self, groups: Iterable[str]) -> list[Domain]:
        """The user's domains: catalog domains named by their groups, else the default one."""
        mine = [self.domains[g] for g in groups if g in self.domains]
        if not mine and self.default_domain:
            mine = [self.domains[self.default_domain]]
        return sorted(mine, key=lambda d: d.id)

    def allowed_images(self, groups: Iterable[str]) -> list[Image]:
        domains = self.domains_for(groups)
        return [i for i in self.images.values()
                if any(_matches(i.id, d.images) for d in domains)]

    def allowed_sizes(self, groups: Iterable[str]) -> list[Size]:
        domains = self.domains_for(groups)
        return [s for s in self.sizes.values()
                if any(_matches(s.id, d.sizes) for d in domains)]

    def allowed_pairs(self, groups: Iterable[str]) -> list[Choice]:
        groups = list(groups)
        return [Choice(i, s) for i in self.allowed_images(groups)
                for s in self.allowed_sizes(groups) if s.can_run(i)]

    def choose(self, groups: Iterable[str], options: Mapping[str, Any],
               note: ChoiceNote | None = None) -> Choice:
        """Validate user_options ``{image, size}`` for a user in ``groups``.

        Missing keys take the catalog default (or, when that is not allowed, the
        first allowed value). Raises :class:`ChoiceError` naming the bad key or
        value and listing the allowed ones (each marked with ``note``'s reason when
        it would still be refused here). A real image or size outside the user's
        domains is said to be so, with the domains named.
        """
        groups = list(groups)
        pick = _Picker(self, groups, note)
        unknown = sorted(set(options) - {"image", "size"})
        if unknown:
            raise ChoiceError(f"unknown option(s) {', '.join(map(quote_value, unknown[:5]))}: "
                              "allowed options are 'image' and 'size'")
        images = {i.id: i for i in self.allowed_images(groups)}
        sizes = {s.id: s for s in self.allowed_sizes(groups)}
        if not images or not sizes:
            raise ChoiceError("your domains allow no image or no size: ask an administrator "
                              "to add you to a domain")
        image = pick("image", options.get("image"), images, self.default_image)
        size_id = options.get("size")
        if size_id is None:
            fitting = {k: s for k, s in sizes.items() if s.can_run(image)}
            if not fitting:
                raise ChoiceError(f"no size you may use can run image {image.id!r}")
            size = pick("size", None, fitting, self.default_size)
        else:
            size = pick("size", size_id, sizes, self.default_size)
        if not size.can_run(image):
            fits = [k for k, s in sizes.items() if s.can_run(image)]
            reason = "it has no GPU" if image.gpu and not size.gpus else "it does not list it"
            raise ChoiceError(f"size {size.id!r} cannot run image {image.id!r} ({reason}); "
                              f"sizes that can: {pick.listing('size', fits) or 'none'}")
        return Choice(image, size)


@dataclass(frozen=True)
class _Picker:
    """One value of a choice, checked against what the user's domains allow."""

    catalog: Catalog
    groups: list[str]
    note: ChoiceNote | None

    def __call__(self, key: str, value: Any, allowed: Mapping[str, Any], default: str) -> Any:
        if value is None:
            return allowed.get(default) or next(iter(allowed.values()))
        if isinstance(value, str) and value in allowed:
            return allowed[value]
        listed = self.listing(key, allowed)
        defined = self.catalog.images if key == "image" else self.catalog.sizes
        if isinstance(value, str) and value in defined:
            domains = ", ".join(d.id for d in self.catalog.domains_for(self.groups))
            raise ChoiceError(f"{key} {value!r} is not allowed in your domains ({domains}): "
                              f"allowed {key}s are {listed}")
        raise ChoiceError(f"unknown {key} {quote_value(value)}: allowed values are {listed}")

    def listing(self, key: str, ids: Iterable[str]) -> str:
        """``base, pytorch (not built here)``: sorted, each with the note on it, if any."""
        marked = []
        for item in sorted(ids):
            why = self.note(key, item) if self.note else None
            marked.append(f"{item} ({why})" if why else item)
        return ", ".join(marked)


def _matches(item: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(item, p) for p in patterns)


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base``; a ``None`` value deletes the key."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def images_dir() -> Path:
    """images/ as shipped in the wheel, or at the top of a source checkout."""
    packaged = Path(__file__).with_name("images")
    return packaged if packaged.is_dir() else Path(__file__).parents[2] / "images"


def _read_yaml(path: Path) -> dict[str, Any]:
    source = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(source, "", "file not found") from None
    except UnicodeDecodeError as e:
        raise CatalogError(source, "", f"not UTF-8 text ({e.reason} at byte {e.start})") \
            from None
    except OSError as e:
        raise CatalogError(source, "", f"cannot be read: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise CatalogError(source, "", f"not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CatalogError(source, "", "must be a mapping with images, sizes and domains")
    return data


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load the built-in catalog, merged with the operator's file at ``path`` if given."""
    data = _read_yaml(BUILTIN_CATALOG)
    bases = {("images", k): images_dir() for k in data.get("images", {})}
    source = str(BUILTIN_CATALOG)
    if path is not None:
        path = Path(path).resolve()
        source = str(path)
        override = _read_yaml(path)
        overridden = override.get("images")
        for key, entry in (overridden.items() if isinstance(overridden, Mapping) else ()):
            if isinstance(entry, Mapping) and "requirements" in entry:
                bases[("images", key)] = path.parent
        data = merge(data, override)
    return parse_catalog(data, source, lambda image_id: bases.get(("images", image_id),
                                                                  images_dir()))


def parse_catalog(data: Mapping[str, Any], source: str,
                  base_dir_for: Any = lambda _id: images_dir()) -> Catalog:
    """Validate merged catalog data and build a :class:`Catalog`.

    Every problem is collected before raising (schema errors sorted by their path in the
    file, then the checks the schema cannot express), so one run reports them all.
    """
    errors = sorted(jsonschema.Draft202012Validator(_SCHEMA).iter_errors(data),
                    key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise CatalogError.of(source, [(".".join(str(p) for p in err.absolute_path),
                                        _schema_message(err)) for err in errors])
    problems: list[tuple[str, str]] = []
    images = {k: _image(k, v, base_dir_for(k), problems) for k, v in data["images"].items()}
    sizes = {k: _size(k, v, problems) for k, v in data["sizes"].items()}
    domains = {k: Domain(id=k, display_name=v["display_name"],
                         images=tuple(v.get("images", ["*"])),
                         sizes=tuple(v.get("sizes", ["*"])),
                         members=tuple(v.get("members", [])),
                         description=v.get("description", ""),
                         jobs=_job_limits(f"domains.{k}.jobs", v.get("jobs") or {}, problems),
                         jobs_per_user=_job_limits(f"domains.{k}.jobs.per_user",
                                                   (v.get("jobs") or {}).get("per_user") or {},
                                                   problems))
               for k, v in data["domains"].items()}
    catalog = Catalog(images=images, sizes=sizes, domains=domains,
                      default_image=data["defaults"]["image"],
                      default_size=data["defaults"]["size"],
                      default_domain=data["defaults"].get("domain"), source=source)
    problems += _reference_problems(catalog)
    if problems:
        raise CatalogError.of(source, problems)
    return catalog


def _schema_message(err: jsonschema.ValidationError) -> str:
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        return f"{err.message}; allowed keys: {', '.join(allowed)}"
    if err.validator == "pattern" and err.schema is _ID:
        return f"{err.instance!r} is not a valid id: use lowercase letters, digits and '-'"
    if err.validator == "pattern" and err.schema is _LABEL_KEY:
        return (f"{err.instance!r} is not a valid Kubernetes label key: [prefix/]name, "
                "the name at most 63 letters, digits, '-', '_' or '.'")
    if err.validator == "pattern" and err.schema is _LABEL_VALUE:
        return (f"{err.instance!r} is not a valid Kubernetes label value: at most 63 "
                "letters, digits, '-', '_' or '.', starting and ending alphanumeric")
    if err.validator == "propertyNames":
        return (f"{err.instance!r} is not a valid id: use lowercase letters, digits and '-' "
                "(at most 63 characters)")
    return err.message


def _image(key: str, v: Mapping[str, Any], base_dir: Path,
           problems: list[tuple[str, str]]) -> Image:
    """The image entry ``key``; a missing requirement file is added to ``problems``."""
    reqs = []
    for i, req in enumerate(v["requirements"]):
        resolved = (base_dir / req).resolve()
        if not resolved.is_file():
            problems.append((f"images.{key}.requirements.{i}",
                             f"requirement file {req!r} not found (looked in {base_dir})"))
        reqs.append(resolved)
    return Image(id=key, display_name=v["display_name"], framework=v["framework"],
                 framework_version=str(v.get("framework_version", "")),
                 accelerator=v["accelerator"], requirements=tuple(reqs),
                 container_image=v["container_image"], description=v.get("description", ""))


def _job_limits(key: str, v: Mapping[str, Any], problems: list[tuple[str, str]]) -> JobLimits:
    memory = v.get("max_memory")
    max_memory = None
    try:
        max_memory = parse_memory(memory) if memory is not None else None
    except QuantityError as e:
        problems.append((f"{key}.max_memory", str(e)))
    cpus = v.get("max_cpus")
    return JobLimits(max_running=v.get("max_running"),
                     max_cpus=float(cpus) if cpus is not None else None,
                     max_memory=max_memory, max_gpus=v.get("max_gpus"))


def _size(key: str, v: Mapping[str, Any], problems: list[tuple[str, str]]) -> Size:
    memory = 0
    try:
        memory = parse_memory(v["memory"])
    except QuantityError as e:
        problems.append((f"sizes.{key}.memory", str(e)))
    kube = v.get("kubernetes") or {}
    for i, toleration in enumerate(kube.get("tolerations", [])):
        problem = _toleration_problem(toleration)
        if problem:
            problems.append((f"sizes.{key}.kubernetes.tolerations.{i}", problem))
    return Size(id=key, display_name=v["display_name"], cpus=float(v["cpus"]), memory=memory,
                gpus=int(v.get("gpus", 0)), images=tuple(v.get("images", ["*"])),
                node_selector=dict(kube.get("node_selector", {})),
                tolerations=tuple(dict(t) for t in kube.get("tolerations", [])))


def _toleration_problem(t: Mapping[str, Any]) -> str:
    """What Kubernetes would refuse in a toleration the schema lets through, or ''."""
    operator = t.get("operator", "Equal")
    if operator == "Exists" and t.get("value"):
        return "operator Exists takes no value: remove value, or use operator Equal"
    if not t.get("key") and operator != "Exists":
        return "a toleration without a key must use operator Exists (it matches every taint)"
    if "tolerationSeconds" in t and t.get("effect") != "NoExecute":
        return "tolerationSeconds applies only to effect NoExecute"
    return ""


def _reference_problems(c: Catalog) -> list[tuple[str, str]]:
    """Names and patterns that point at nothing, and defaults that cannot run together."""
    problems: list[tuple[str, str]] = []
    for size in c.sizes.values():
        for i, pattern in enumerate(size.images):
            problems += _pattern_problem(f"sizes.{size.id}.images.{i}", pattern, c.images)
        for image in c.images.values():
            if image.gpu and size.gpus == 0 and size.images != ("*",) \
                    and image.id in size.images:
                problems.append((f"sizes.{size.id}.images",
                                 f"GPU image {image.id!r} needs a size with gpus > 0"))
    for domain in c.domains.values():
        for i, pattern in enumerate(domain.images):
            problems += _pattern_problem(f"domains.{domain.id}.images.{i}", pattern, c.images)
        for i, pattern in enumerate(domain.sizes):
            problems += _pattern_problem(f"domains.{domain.id}.sizes.{i}", pattern, c.sizes)
    for key, value, table in (("image", c.default_image, c.images),
                              ("size", c.default_size, c.sizes),
                              ("domain", c.default_domain, c.domains)):
        if value is not None and value not in table:
            problems.append((f"defaults.{key}", f"unknown {key} {value!r}: defined are "
                                                f"{', '.join(sorted(table))}"))
    default_size, default_image = c.sizes.get(c.default_size), c.images.get(c.default_image)
    if default_size and default_image and not default_size.can_run(default_image):
        problems.append(("defaults", f"default size {c.default_size!r} cannot run default "
                                     f"image {c.default_image!r}"))
    return problems


def _pattern_problem(key: str, pattern: str, table: Mapping[str, Any]) -> list[tuple[str, str]]:
    if any(fnmatch.fnmatchcase(k, pattern) for k in table):
        return []
    return [(key, f"{pattern!r} matches nothing: defined are {', '.join(sorted(table))}")]
