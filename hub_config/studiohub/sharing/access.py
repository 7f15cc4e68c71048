"""Who may see what: a user's domains, and the refusals, as pure functions.

A user's domains are their JupyterHub groups read through the catalog
(:meth:`Catalog.domains_for`: catalog domains named by their groups, else the default
domain), so sharing agrees with what the spawn form offers them. Without a catalog
every group is a domain.

Refusals never name the notebook: a stranger holding a link learns that it exists and,
for a live share, which domain to ask to join; never its title, author or content.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tornado import web

from ..catalog import Catalog
from .inputs import quoted
from .store import Share

REVOKED = "this shared notebook was revoked by its author: ask them for a new link"


class Refusal(web.HTTPError):
    """A request refused with a 4xx; ``message`` is what the user reads (JSON or page)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message.replace("%", "%%"))
        self.message = message


def user_domains(groups: Iterable[str], catalog: Catalog | None) -> list[str]:
    """The domain ids a user with ``groups`` belongs to."""
    if catalog is None:
        return sorted(set(groups))
    return [d.id for d in catalog.domains_for(groups)]


def domain_names(catalog: Catalog | None) -> Mapping[str, str]:
    """Domain id → display name, for messages and pages."""
    return {d.id: d.display_name for d in catalog.domains.values()} if catalog else {}


def check_can_share_to(domain: str, domains: list[str]) -> None:
    """One of the user's own domains, or a 400 listing theirs (unknown and foreign alike)."""
    if domain not in domains:
        mine = ", ".join(repr(d) for d in domains) or "none: ask an administrator to add you"
        raise Refusal(400, f"domain {quoted(domain)} is not one of your domains; your "
                           f"domains: {mine}")


def check_can_view(share: Share | None, user: str, domains: list[str],
                   names: Mapping[str, str]) -> Share:
    """The share if ``user`` may see it: 404 unknown, 410 revoked, 403 outside its domain."""
    if share is None:
        raise Refusal(404, "no shared notebook at this link: check that you copied all of it")
    if share.revoked is not None:
        raise Refusal(410, REVOKED)
    if share.author != user and share.domain not in domains:
        label = names.get(share.domain, share.domain)
        raise Refusal(403, f"this notebook is shared with the domain {label!r} "
                           f"({share.domain}), and you are not a member: ask an administrator "
                           f"to add you to {label!r}")
    return share


def check_is_author(share: Share, user: str) -> None:
    """Only the author publishes versions and revokes."""
    if share.author != user:
        raise Refusal(403, "only the author of a shared notebook can change or revoke it")
