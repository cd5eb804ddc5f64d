"""``python -m paycore.cli``: the same as the ``paycore`` command."""
import sys

from paycore.cli import main

sys.exit(main())
