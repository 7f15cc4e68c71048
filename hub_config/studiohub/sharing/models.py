"""JSON models of shares, versions and audit events, and the environment label.

The same dictionaries feed the API and the pages, so what the Lab panel shows and what
the preview page shows cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from .notebooks import title_of
from .service import Sharing
from .store import Event, Share, Version


def share_model(share: Share, viewer: str, sharing: Sharing, prefix: str) -> dict[str, Any]:
    """A share as the API lists it; ``views`` only for its author."""
    model: dict[str, Any] = {
        "id": share.id,
        "url": f"{prefix}s/{share.id}",
        "title": title_of(share.name),
        "name": share.name,
        "author": share.author,
        "domain": share.domain,
        "domain_name": sharing.domain_names.get(share.domain, share.domain),
        "created": share.created.isoformat(),
        "updated": share.updated.isoformat(),
        "version": share.latest_version,
        "revoked": share.revoked.isoformat() if share.revoked else None,
    }
    if viewer == share.author:
        model["views"] = share.views
    return model


def version_model(version: Version, sharing: Sharing) -> dict[str, Any]:
    return {
        "number": version.number,
        "created": version.created.isoformat(),
        "note": version.note,
        "include_outputs": version.include_outputs,
        "environment": {"image": version.image, "size": version.size,
                        "kernel": version.kernel,
                        "label": environment_label(version, sharing)},
        "bytes": version.nbytes,
    }


def event_model(event: Event) -> dict[str, Any]:
    return {"id": event.id, "time": event.time.isoformat(), "user": event.actor,
            "action": event.action, "share": event.share_id, "version": event.version,
            "detail": event.detail}


def environment_label(version: Version, sharing: Sharing) -> str:
    """``PyTorch 2.13 · CPU · 2 vCPU + 4 GiB``, from the catalog when it knows the ids."""
    catalog = sharing.catalog
    parts = []
    if version.image:
        image = catalog.images.get(version.image) if catalog else None
        parts.append(image.label if image else version.image)
    elif version.kernel:
        parts.append(version.kernel)
    if version.size:
        size = catalog.sizes.get(version.size) if catalog else None
        parts.append(size.display_name if size else version.size)
    return " · ".join(parts) or "not recorded in the notebook"
