"""limemu: the command-line tool and helpers around the golden model (python_model)."""

__version__ = "0.1.0"
