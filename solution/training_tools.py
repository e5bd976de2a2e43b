"""Stands in for training_tools.py beside the reference: the kit's one copy is
assignment/training_tools.py (students get it beside their vae.py). Importing this module loads
that file as ``training_tools``, so that solution/vae.py imports it with the same plain line as
the student's file, whose opening then reads like any other script's."""
import importlib.util
import os
import sys

_path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assignment", "training_tools.py")
_spec = importlib.util.spec_from_file_location(__name__, _path)
_module = importlib.util.module_from_spec(_spec)
sys.modules[__name__] = _module  # the import that asked for training_tools gets the real one
_spec.loader.exec_module(_module)
