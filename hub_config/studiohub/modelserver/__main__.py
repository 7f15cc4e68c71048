"""``python -m studiohub.modelserver``: see :mod:`studiohub.modelserver.server`."""

import sys

from .server import main

sys.exit(main())
