import sys

from asl_export.cli import main

# `__package__` tells `python -m asl_export` apart from a loader importing this file by path.
if __name__ == "__main__" and __package__ == "asl_export":
    sys.exit(main())
