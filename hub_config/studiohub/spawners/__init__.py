"""StudioHub's spawners: :mod:`.local` (unix accounts and cgroups on this host) and
:mod:`.kube` (KubeSpawner pods), both choosing from the catalog through
:mod:`studiohub.catalog_choice`. Import the one you use: each pulls in only its own side.
"""
