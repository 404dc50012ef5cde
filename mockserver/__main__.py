"""`python -m mockserver` runs the `logx-mock` command."""

from __future__ import annotations

import sys

from .serve.cli import main

sys.exit(main())
