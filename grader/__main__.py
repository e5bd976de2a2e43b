"""Command line: python -m grader COMMAND ..."""
import argparse
import json
import os
import sys

from . import release as release_module
from .paths import ROOT


def cmd_release(args):
    stale = release_module.release(check_only=args.check)
    names = [os.path.relpath(p, ROOT) for p in stale]
    if args.check:
        if names:
            print(f"stale: {', '.join(names)}: run python -m grader release", file=sys.stderr)
            return 1
        print("the released files match solution/vae.py")
        return 0
    print(f"wrote {', '.join(names)}" if names else "already up to date")
    return 0


def cmd_check(args):
    from .grade import GraderError, evaluate, public_json, text_report
    try:
        result = evaluate(args.file, include_hidden=args.all, sandbox=args.sandbox)
    except GraderError as e:
        print(f"grader: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(public_json(result), indent=1))
    else:
        print(text_report(result))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("release", help="generate assignment/vae.py from solution/vae.py")
    p.add_argument("--check", action="store_true", help="only report whether the files are stale")
    p.set_defaults(func=cmd_release)
    p = commands.add_parser("check", help="check one file: points per function, with hints")
    p.add_argument("file", help="the submission, e.g. vae.py")
    p.add_argument("--json", action="store_true", help="print only JSON on stdout")
    p.add_argument("--all", action="store_true", help="add the hidden checks (needs the reference)")
    p.add_argument("--sandbox", action="store_true", help="run the submission in a bubblewrap sandbox")
    p.set_defaults(func=cmd_check)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except release_module.ReleaseError as e:
        print(f"grader: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
