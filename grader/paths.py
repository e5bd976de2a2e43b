"""Where the kit's files live, relative to this package."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOLUTION = os.path.join(ROOT, "solution", "vae.py")
ASSIGNMENT = os.path.join(ROOT, "assignment", "vae.py")
# Every reference file with solution regions, and the student file generated from it.
GENERATED = [(SOLUTION, ASSIGNMENT),
             (os.path.join(ROOT, "solution", "flows.py"), os.path.join(ROOT, "assignment", "flows.py"))]
