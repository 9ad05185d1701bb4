"""``python -m fastasgi APP``."""

from fastasgi.cli import main

if __name__ == "__main__":
    main()
