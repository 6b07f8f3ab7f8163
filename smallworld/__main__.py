"""``python -m smallworld``: the same command line as ``smallworld``."""

from .cli import main

if __name__ == "__main__":
    main()
