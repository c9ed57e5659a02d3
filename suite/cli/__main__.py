"""``python -m suite.cli``: the ``lyapbench`` command."""
import sys

from suite.cli import main

sys.exit(main())
