"""Graph transformations: autodiff and the named passes a compile runs."""
from .autodiff import add_backward
from .builder import Builder
from .passes import DEFAULT, Options, Pass, Pipeline, Record

__all__ = ["add_backward", "Builder", "DEFAULT", "Options", "Pass", "Pipeline", "Record"]
