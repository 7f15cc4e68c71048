"""A deleted job's files in the user's home, removed **as the user** (as they were made).

``DELETE api/jobs/ID`` removes the code snapshot, ``~/studiohub-jobs/<id>/code``, and
keeps the job's outputs, checkpoints and TensorBoard files, which are the user's results;
with ``?outputs=true`` the whole ``~/studiohub-jobs/<id>/`` goes. ``rm`` runs as the
user's own account from the home (:func:`.snapshot.as_user`), so a link the user planted
there can at worst remove what that account may remove anyway: root never walks a
user's home. The service removes the job's logs (``<state>/jobs/<id>``) itself.
"""

from __future__ import annotations

import re
from typing import Any

from .snapshot import JOBS_DIR, as_user

#: Seconds the removal may take (a large outputs folder on a slow disk).
REMOVE_TIMEOUT = 300.0


def home_target(job_id: str, outputs: bool) -> str:
    """The home-relative folder a delete removes (see the module's doc)."""
    if not re.fullmatch(r"[0-9a-f]{12}", job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return f"{JOBS_DIR}/{job_id}" if outputs else f"{JOBS_DIR}/{job_id}/code"


async def discard(job: Any, account: Any, outputs: bool) -> None:
    """The jobs service's ``discard`` hook on this host: ``rm -rf`` as ``account``."""
    await as_user(account.unix_user, ["/bin/rm", "-rf", "--", home_target(job.id, outputs)],
                   REMOVE_TIMEOUT)
