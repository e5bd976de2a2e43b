"""Command line: python -m grader COMMAND ..."""
import argparse
import json
import os
import sys

from .paths import ROOT


def cmd_release(args):
    try:
        from . import release as release_module
    except ImportError:
        print("grader: release is for instructors; it needs the kit's full source", file=sys.stderr)
        return 2
    if args.variant is not None or args.roster is not None:
        from . import roster
        return release_variant(roster, args)
    try:
        stale = release_module.release(check_only=args.check)
    except release_module.ReleaseError as e:
        print(f"grader: {e}", file=sys.stderr)
        return 2
    names = [os.path.relpath(p, ROOT) for p in stale]
    if args.check:
        if names:
            print(f"stale: {', '.join(names)}: run python -m grader release", file=sys.stderr)
            return 1
        print("the released files match solution/vae.py and solution/flows.py")
        return 0
    print(f"wrote {', '.join(names)}" if names else "the assignment files and the fixtures are up to date")
    folder, archive = release_module.build_bundle(args.bundle_dir)
    print(f"student bundle: {os.path.relpath(folder)}/ and {os.path.relpath(archive)}")
    return 0


def release_variant(roster_module, args):
    """release --variant NAME [--roster CSV]: everything for that variant in --bundle-dir."""
    from .variants import VariantError
    if args.check:
        print("grader: --check compares the checked-in files with the reference; it takes no --variant",
              file=sys.stderr)
        return 2
    if args.roster is not None and not os.path.isfile(args.roster):
        print(f"grader: the roster {args.roster} is not a file", file=sys.stderr)
        return 2
    bar = None

    def progress(done, total):
        nonlocal bar
        if bar is None:
            from tqdm import tqdm
            bar = tqdm(total=total, desc="bundles", unit="student", file=sys.stderr)
        bar.update(1)
    try:
        variant, written = roster_module.release_variant(args.variant or "original", args.bundle_dir, args.roster,
                                                         progress=progress)
    except (VariantError, roster_module.ReleaseError) as e:
        print(f"grader: {e}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    print(f"variant {variant.name} ({variant.canonical}): " + "; ".join(variant.describe()))
    print(f"wrote into {os.path.relpath(args.bundle_dir)}/: {', '.join(written)}")
    print(f"{os.path.join(os.path.relpath(args.bundle_dir), 'instructor')}/ holds the solutions: never hand it out")
    return 0


def cmd_variants(args):
    from .variants import POOL, VariantError, variant
    if not args.names:
        print(f"{len(POOL)} variants (a name maps to one of them; python -m grader variants NAME says which):")
        for v in POOL:
            print(f"  {v.canonical:<40s} changes {', '.join(v.changed_functions())}")
        return 0
    for name in args.names:
        try:
            v = variant(name)
        except VariantError as e:
            print(f"grader: {e}", file=sys.stderr)
            return 2
        print(f"{name}: {v.canonical}\n  " + "\n  ".join(v.describe()))
    return 0


def isolation_for(args, default):
    """The isolation of this run, chosen once: ``default`` ("auto" or "none"), --sandbox asks for it,
    --no-sandbox opts out. Says on stderr what the submissions can reach; None (after saying why)
    when isolation was wanted and cannot be had."""
    from .isolation import IsolationError, choose
    wanted = "none" if args.no_sandbox else "auto" if getattr(args, "sandbox", False) else default
    try:
        isolation = choose(wanted)
    except IsolationError as e:
        print(f"grader: {e}", file=sys.stderr)
        return None
    if wanted != "none":
        print(f"grader: isolation: {isolation.description}", file=sys.stderr)
    elif args.no_sandbox:
        print(f"grader: no isolation (--no-sandbox): {isolation.description}", file=sys.stderr)
    return isolation


INTERRUPTED = 130  # the shell's status for a command stopped by Ctrl-C (128 + SIGINT)


def stopped_by(received):
    """The exit status after a stop by ``received`` signals: 130 for Ctrl-C, 143 for SIGTERM."""
    import signal
    return 128 + (received[0] if received else signal.SIGINT)


def cmd_check(args):
    from .grade import GraderError, evaluate, public_json, text_report
    from .isolation import IsolationError
    from .runner import GradingInterrupted
    if not os.path.isfile(args.file):
        what = "is a folder, not a file" if os.path.isdir(args.file) else "does not exist"
        print(f"grader: {args.file} {what}: give the path of your vae.py (or flows.py)", file=sys.stderr)
        return 2
    with stop_cleanly() as received:  # a Ctrl-C while the isolation is probed stops it too
        isolation = isolation_for(args, "auto" if args.all else "none")
        if isolation is None:
            return 2
        try:
            result = evaluate(args.file, include_hidden=args.all, isolation=isolation, part=args.part,
                              variant=args.variant)
        except GradingInterrupted:
            print("grader: stopped; nothing was checked", file=sys.stderr)
            return stopped_by(received)
        except (GraderError, IsolationError) as e:
            print(f"grader: {e}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(public_json(result), indent=1))
    else:
        print(text_report(result))
    return 0


def cmd_grade(args):
    from .batch import BatchError, find_submissions, grade_folder, prepare_out, skipped_entries
    from .intake import is_archive
    if not os.path.isdir(args.directory) and not (os.path.isfile(args.directory) and is_archive(args.directory)):
        what = "does not exist" if not os.path.exists(args.directory) else "is neither a folder nor a zip or tar"
        print(f"grader: {args.directory} {what}: give a folder of submissions, or an LMS's download (the zip or its "
              f"folder)", file=sys.stderr)
        return 2
    if os.path.isdir(args.directory) and not find_submissions(args.directory):
        print(f"grader: {args.directory} holds no submissions: one .py, notebook or zip per student, one folder "
              f"per student holding vae.py, or an LMS's download", file=sys.stderr)
        return 2
    if args.variant is not None and args.manifest is not None:
        print("grader: give --variant (one for the class) or --manifest (one per student), not both", file=sys.stderr)
        return 2
    try:
        prepare_out(args.out)  # before the isolation probe: a wrong --out is said at once
        if args.manifest is not None:
            from .batch import read_manifest
            read_manifest(args.manifest)
        if args.variant is not None:
            from .variants import VariantError, variant
            try:
                variant(args.variant)
            except VariantError as e:
                raise BatchError(str(e)) from None
    except BatchError as e:
        print(f"grader: {e}", file=sys.stderr)
        return 2
    with stop_cleanly() as received:
        isolation = isolation_for(args, "auto")
        if isolation is None:
            return 2
        try:
            rows = grade_folder(args.directory, args.out, jobs=args.jobs, force=args.force, isolation=isolation,
                                variant=args.variant, manifest=args.manifest)
        except BatchError as e:
            print(f"grader: {e}", file=sys.stderr)
            return 2
    for entry, why in (skipped_entries(args.directory) if os.path.isdir(args.directory) else {}).items():
        print(f"grader: skipped {entry}: {why}", file=sys.stderr)
    graded = len(rows) - rows.skipped
    if rows.interrupted:
        print(f"grader: stopped after grading {graded} submission(s) this run; {rows.interrupted} were not graded. "
              f"{os.path.join(args.out, 'grades.csv')} and summary.md hold the {len(rows)} graded so far; run the "
              f"same command again to carry on.", file=sys.stderr)
        return stopped_by(received)
    print(f"graded {graded} submissions: {os.path.join(args.out, 'grades.csv')}; what the class "
          f"got wrong: {os.path.join(args.out, 'summary.md')}")
    from .grade import NOT_ON_ROSTER
    off_roster = [r["student"] for r in rows if r.get("variant") == NOT_ON_ROSTER]
    if off_roster:
        print(f"grader: {len(off_roster)} submission(s) match no one on the manifest's roster and were not graded "
              f"(0, saying so): {', '.join(off_roster)}", file=sys.stderr)
    if rows.skipped:
        print(f"skipped {rows.skipped} already graded in {args.out} (their rows are in grades.csv; "
              f"--force grades them again)")
    if rows.failed:
        for student, reason in sorted(rows.failed.items()):
            print(f"grader: could not grade {student}: {reason}", file=sys.stderr)
        print(f"grader: {len(rows.failed)} submissions were not graded (nothing was recorded for them; "
              f"run the same command again once the cause is fixed)", file=sys.stderr)
        return 1
    return 0


def cmd_export(args):
    from .batch import BatchError, owning
    from .lms import ExportError, export_out
    if not os.path.isdir(args.out):
        print(f"grader: {args.out} is not a folder: give the --out of a `grade` run", file=sys.stderr)
        return 2
    options = {"column": args.column, "classlist": args.classlist}
    try:
        with owning(args.out):  # not while a `grade` run is writing it
            written, missing = export_out(args.out, args.to, options)
    except (ExportError, BatchError) as e:
        print(f"grader: {e}", file=sys.stderr)
        return 2
    print("wrote " + ", ".join(os.path.relpath(p) for p in written))
    for problem in missing:
        print(f"grader: not exported: {problem}", file=sys.stderr)
    if missing:
        print(f"grader: {len(missing)} student(s) are not in the export (above): enter their grades by hand, or fix "
              f"the cause and export again", file=sys.stderr)
        return 1
    return 0


def stop_cleanly():
    """Ctrl-C (SIGINT) and SIGTERM stop the grading cleanly: the children killed, their folders
    removed, what was finished kept; no traceback."""
    import signal

    from .runner import stop_cleanly_on
    return stop_cleanly_on(signal.SIGINT, signal.SIGTERM)


def cmd_nbgrader_course(args):
    try:
        from .nbgrader_course import write_course
    except ImportError as e:
        print(f"grader: nbgrader-course needs the kit's full source and nbformat ({e})", file=sys.stderr)
        return 2
    from .variants import VariantError
    try:
        notebook = write_course(args.directory, variant=args.variant)
    except VariantError as e:
        print(f"grader: {e}", file=sys.stderr)
        return 2
    print(f"wrote {os.path.join(args.directory, 'nbgrader_config.py')} and {notebook}\n"
          f"next: cd {args.directory} && nbgrader generate_assignment vae")
    return 0


def cmd_gradescope_bundle(args):
    from .gradescope import build_bundle
    from .variants import VariantError, variant
    try:
        chosen = variant(args.variant) if args.variant else None
    except VariantError as e:
        print(f"grader: {e}", file=sys.stderr)
        return 2
    path = build_bundle(args.out, hidden_visibility=args.hidden_visibility, variant=chosen)
    print(f"wrote {path}: upload it as the autograder of a Gradescope programming assignment")
    return 0


def cmd_gradescope_run(args):
    from .gradescope import run
    from .isolation import IsolationError
    from .runner import GradingInterrupted
    with stop_cleanly() as received:
        try:
            data = run(args.root)
        except IsolationError as e:  # no results.json: Gradescope shows the autograder failed, not a 0
            print(f"grader: {e}", file=sys.stderr)
            return 2
        except GradingInterrupted:  # Gradescope's timeout (SIGTERM): no results.json, never a 0
            print("grader: stopped before the submission was graded; no results were written", file=sys.stderr)
            return stopped_by(received)
    print(f"score {data['score']}: {os.path.join(args.root, 'results', 'results.json')}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    # the student bundle holds only what `check` needs: it offers only that
    here = os.path.dirname(os.path.abspath(__file__))
    has = {name: os.path.exists(os.path.join(here, f"{name}.py"))
           for name in ("release", "batch", "nbgrader_course", "gradescope")}
    if has["release"]:
        add_release(commands)
        p = commands.add_parser("variants", help="list the assignment's variants, or say which one each NAME gives")
        p.add_argument("names", nargs="*", help="variant names (a term, such as fall2027)")
        p.set_defaults(func=cmd_variants)
    add_check(commands)
    if has["batch"]:
        add_grade(commands)
        add_export(commands)
    if has["nbgrader_course"]:
        add_nbgrader_course(commands)
    if has["gradescope"]:
        add_gradescope(commands)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:  # a command that grades nothing (release, nbgrader-course): no traceback
        print("grader: stopped (Ctrl-C)", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:  # `... | head` stopped reading: nothing went wrong here
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def add_release(commands):
    p = commands.add_parser("release", help="generate assignment/vae.py and flows.py from solution/, and the student bundle")
    p.add_argument("--check", action="store_true", help="only report whether the files are stale")
    p.add_argument("--bundle-dir", default=os.path.join(ROOT, "build"),
                   help="where to write the student bundle, a folder and a zip (default: build/)")
    p.add_argument("--variant", default=None, metavar="NAME",
                   help="release variant NAME (any word, such as fall2027; `original` is the unchanged assignment): "
                        "its bundle, notebook, nbgrader course, Gradescope zip, variant.json and instructor/solution.py")
    p.add_argument("--roster", default=None, metavar="CSV",
                   help="with --variant: one bundle per student of the roster (a student-id column; name and email "
                        "optional), each of its own variant, and students/manifest.csv")
    p.set_defaults(func=cmd_release)


def add_check(commands):
    p = commands.add_parser("check", help="check one file: points per function, with hints")
    p.add_argument("file", help="the submission, e.g. vae.py, or flows.py for the optional part")
    p.add_argument("--part", choices=["vae", "flows"], default=None,
                   help="which part the file answers (default: flows when its name contains 'flows', else vae)")
    p.add_argument("--json", action="store_true", help="print only JSON on stdout")
    p.add_argument("--all", action="store_true", help="add the hidden checks (needs the reference); the "
                                                      "submission then runs isolated, as in grade")
    p.add_argument("--sandbox", action="store_true", help="isolate the submission even without --all")
    p.add_argument("--variant", default=None, metavar="NAME",
                   help="the assignment's variant (default: the bundle's own, else the original)")
    p.add_argument("--no-sandbox", action="store_true", help="never isolate it: process limits only (unsafe "
                                                             "for code you do not trust)")
    p.set_defaults(func=cmd_check)


def add_grade(commands):
    p = commands.add_parser("grade", help="grade a folder of submissions (instructors)")
    p.add_argument("directory", help="one .py, notebook or zip per student, one folder per student holding vae.py "
                                     "(and flows.py, graded as the optional part), or an LMS's download: the zip "
                                     "or its folder (Canvas, Moodle, Blackboard, Brightspace)")
    p.add_argument("--out", required=True, help="folder for grades.csv and per-student results")
    p.add_argument("--jobs", type=int, default=2, help="submissions graded at once (default 2)")
    p.add_argument("--force", action="store_true", help="grade again students already graded")
    p.add_argument("--variant", default=None, metavar="NAME", help="grade everyone against variant NAME")
    p.add_argument("--manifest", default=None, metavar="CSV",
                   help="grade each student against their own variant (release --roster's students/manifest.csv)")
    p.add_argument("--no-sandbox", action="store_true", help="do not isolate the submissions (process limits only; "
                                                             "they can then read and change what you can)")
    p.set_defaults(func=cmd_grade)


def add_export(commands):
    p = commands.add_parser("export", help="write the gradebook import of an LMS from a `grade` run (instructors)")
    p.add_argument("out", help="the --out folder of `grade`, graded from the LMS's download")
    p.add_argument("--to", required=True, choices=["canvas", "moodle", "blackboard", "brightspace", "gradescope"],
                   help="the LMS to import the grades into")
    p.add_argument("--column", default=None, metavar="NAME",
                   help="the gradebook column (Canvas: 'VAE (123456)' with the assignment's id updates it; Blackboard: "
                        "the header of its download, 'VAE [Total Pts: 100 Score] |123456'; Brightspace: the grade "
                        "item's name). Default: a new column named VAE")
    p.add_argument("--classlist", default=None, metavar="CSV",
                   help="Brightspace: the course's grades export, for the OrgDefinedId and Username of each name")
    p.set_defaults(func=cmd_export)


def add_nbgrader_course(commands):
    p = commands.add_parser("nbgrader-course", help="write an nbgrader course directory (instructors)")
    p.add_argument("directory", help="the course directory to write (nbgrader_config.py, source/vae/)")
    p.add_argument("--variant", default=None, metavar="NAME", help="the course's variant (default: the original)")
    p.set_defaults(func=cmd_nbgrader_course)


def add_gradescope(commands):
    p = commands.add_parser("gradescope-bundle", help="build a Gradescope autograder zip (instructors)")
    p.add_argument("out", help="the zip to write, e.g. autograder.zip")
    p.add_argument("--hidden-visibility", default="after_published",
                   choices=["hidden", "after_due_date", "after_published", "visible"],
                   help="when students see the hidden checks' results (default: after_published)")
    p.add_argument("--variant", default=None, metavar="NAME", help="the assignment's variant (default: the original)")
    p.set_defaults(func=cmd_gradescope_bundle)
    p = commands.add_parser("gradescope-run", help="grade ROOT/submission into ROOT/results (run_autograder)")
    p.add_argument("--root", default=os.environ.get("AUTOGRADER_ROOT", "/autograder"))
    p.set_defaults(func=cmd_gradescope_run)


if __name__ == "__main__":
    sys.exit(main())
