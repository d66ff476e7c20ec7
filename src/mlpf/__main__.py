"""`python -m mlpf` is the same as the `mlpf` command."""

from __future__ import annotations

import sys

from mlpf.cli import main

sys.exit(main())
