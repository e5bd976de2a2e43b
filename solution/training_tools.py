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


# ------------------------------------------------------------------ instructors: --variant
def _variant_option(parser):
    parser.add_argument("--variant", default=None, metavar="NAME",
                        help="(instructors) train variant NAME's reference instead (python -m grader variants lists "
                             "them); its default --out is results/variant-CANONICAL")


_module.EXTRA_OPTIONS.append(_variant_option)
_parse_args = _module.parse_args


def _parse_args_with_variant(description, argv=None, flows=False):
    """The kit's options, and --variant NAME: a variant other than the original is rendered
    (solution/variants.py) and its own main runs with the other options, then the process ends."""
    args = _parse_args(description, argv, flows)
    if flows or not getattr(args, "variant", None):
        return args
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if root not in sys.path:
        sys.path.insert(0, root)
    from grader.variants import VariantError, variant
    try:
        chosen = variant(args.variant)
    except VariantError as e:
        sys.exit(f"vae.py: {e}")
    if chosen.is_original:
        return args
    rest = list(sys.argv[1:] if argv is None else argv)
    for i, word in enumerate(rest):  # the same options, less --variant
        if word == "--variant":
            del rest[i:i + 2]
            break
        if word.startswith("--variant="):
            del rest[i]
            break
    if not any(w == "--out" or w.startswith("--out=") for w in rest):
        rest += ["--out", os.path.join("results", f"variant-{chosen.canonical}")]
    from grader.expected import variant_module
    print(f"variant {chosen.name}: {chosen.canonical}", file=sys.stderr)
    module = variant_module(chosen, name="vae")
    sys.modules["vae"] = module
    module.main(rest)
    sys.exit(0)


_module.parse_args = _parse_args_with_variant
