"""``python -m smallworld``: the same command line as ``smallworld``."""

from .cli import app

if __name__ == "__main__":
    app(prog_name="smallworld")
