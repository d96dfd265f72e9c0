"""The ``kfops`` command line, the top of the house: ``local``, ``pipeline``, ``render``, ``doctor``, ``loadtest``."""

from kfops.cli import doctor, loadtest, local, pipeline, render  # noqa: F401 - each registers its commands
from kfops.cli.app import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
