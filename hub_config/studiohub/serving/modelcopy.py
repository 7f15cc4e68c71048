"""Copy a model into an endpoint version's folder, **as the user** (run by
:func:`copy_model` with the user's uid, gid and groups; standard library only).

    python -I -m studiohub.serving.modelcopy SOURCE TARGET [--check] [--max-bytes N]

Detects the format (:mod:`studiohub.modelserver.formats`, by names only), then copies
SOURCE (a folder, or one model file) to ``TARGET/model`` (or ``TARGET/<file name>``),
``~/studiohub-endpoints/`` made 0700. The copy is what the version serves and what a
rollback returns to, whatever the user does to SOURCE afterwards. A TARGET already there
(a deleted endpoint's kept copy, when its name is deployed again) is renamed
``TARGET.replaced-<UTC time>``, never overwritten. Prints one JSON line
``{format, framework, model_path, bytes, kept}``; on a refusal one line of text and exit 1.
Running as the user means the copy holds only what that account may read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from ..modelserver import formats

MAX_BYTES = 20 * 1024**3


def size_of(path: Path, limit: int) -> int:
    """Bytes under ``path`` (links followed, as the copy will); stops past ``limit``."""
    if not path.is_dir():
        return path.stat().st_size
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            total += (Path(folder) / name).stat().st_size
            if total > limit:
                return total
    return total


def set_aside(target: Path) -> Path:
    """Renames ``target`` to a free ``<name>.replaced-<UTC time>[-n]`` beside it."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    for n in range(1000):
        kept = target.with_name(f"{target.name}.replaced-{stamp}" + (f"-{n}" if n else ""))
        if not kept.exists() and not kept.is_symlink():
            target.rename(kept)
            return kept
    raise ValueError(f"{target} is in the way and could not be renamed: move it")


def copy(source: Path, target: Path, max_bytes: int, check: bool) -> dict[str, object]:
    if not source.exists():
        raise ValueError(f"{source} does not exist")
    found = formats.detect(source)
    answer: dict[str, object] = {"format": found.name, "framework": found.framework,
                                 "model_path": "", "bytes": 0, "kept": ""}
    total = size_of(source, max_bytes)
    if total > max_bytes:
        raise ValueError(f"the model is larger than {max_bytes // 1024**2} MiB, the most an "
                         "endpoint copies")
    answer["bytes"] = total
    if check:
        return answer
    target.parent.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        answer["kept"] = str(set_aside(target))
    target.mkdir(mode=0o700, parents=True)
    if source.is_dir():
        model_path = target / "model"
        shutil.copytree(source, model_path, symlinks=False)
    else:
        model_path = target / source.name
        shutil.copy2(source, model_path)
    answer["model_path"] = str(model_path)
    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="studiohub.serving.modelcopy")
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--max-bytes", type=int, default=MAX_BYTES)
    args = parser.parse_args(argv)
    os.umask(0o077)  # the copy is the user's alone (here, not in copy(): process-wide)
    try:
        answer = copy(Path(args.source), Path(args.target), args.max_bytes, args.check)
    except formats.FormatError as e:
        print(str(e))
        return 1
    except (OSError, ValueError, shutil.Error) as e:
        print(f"cannot copy the model: {e}")
        return 1
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
