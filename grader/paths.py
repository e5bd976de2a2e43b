"""Where the kit's files live, relative to this package."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOLUTION = os.path.join(ROOT, "solution", "vae.py")
ASSIGNMENT = os.path.join(ROOT, "assignment", "vae.py")
