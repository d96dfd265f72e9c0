"""The ``kfops`` command line: the top floor of the house (``kfops local``, ``kfops pipeline``, ``kfops render``)."""

from kfops.cli import local, pipeline, render  # noqa: F401 - each module registers its commands on `main`
from kfops.cli.app import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
