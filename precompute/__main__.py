"""``python -m precompute build|metrics|report|info|migrate``; see ``precompute.cli``."""

import sys

from precompute.cli import main

if __name__ == "__main__":
    sys.exit(main())
