"""The ``kfops`` command line, the top floor of the house: ``kfops local``, ``pipeline``, ``render``, ``doctor``."""

from kfops.cli import doctor, local, pipeline, render  # noqa: F401 - each module registers its commands on `main`
from kfops.cli.app import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
