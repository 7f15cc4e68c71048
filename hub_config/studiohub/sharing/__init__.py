"""Notebook sharing: a JupyterHub service that shares notebook snapshots within a domain.

An author shares a notebook with one of their domains (JupyterHub groups); members open
a read-only, script-free preview at the link and can copy the notebook into their own
workspace. The author can publish new versions to the same link, or revoke it. Admins
read an audit trail. See docs/sharing.md.

Nothing is imported here, so ``jupyterhub_config.py`` can import :mod:`.config` without
loading nbconvert into the hub. Modules: :mod:`.app` (``create_app``, ``SharingApp``),
:mod:`.config` (``update_sharing``), :mod:`.api` and :mod:`.pages` (handlers on
:mod:`.base`), :mod:`.service` (decisions, audit), :mod:`.models` (JSON), :mod:`.access`,
:mod:`.notebooks`, :mod:`.render`, :mod:`.snapshots`, :mod:`.store`, :mod:`.workspace`.
"""
