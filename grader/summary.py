"""What the class got wrong: OUT/summary.md and OUT/scores.png, written after `grade`.

Built from the students' NAME.json records only, so a rerun that grades a few more students
summarizes everyone. For the instructor, not the students: it names them.
- the distribution of scores per function (the figure, and a table);
- every named mistake with the students who made it, most frequent first (a mistake is
  counted once per student, however many checks it failed; wrong values that match no known
  mistake are listed only for a function where the student made no named one);
- the files that failed to import, and those whose top-level code was only partly run.
"""
import os
from collections import defaultdict

from .parts import FUNCTIONS, PARTS
from .grade import IMPORT_FAILED

OTHER = "wrong values that match no known mistake"


def per_function(record, functions):
    """{function: (score, max_score)} of one record (one part)."""
    out = {}
    for f in functions:
        tests = [t for t in record.get("tests", []) if t["function"] == f]
        if tests:
            out[f] = (sum(t["score"] for t in tests), sum(t["max_score"] for t in tests))
    return out


def mistakes_of(record):
    """{(function, mistake)} of one record: every failed check's named mistake, once."""
    found = set()
    if not record.get("tests") or all(t.get("mistake") == IMPORT_FAILED for t in record["tests"]):
        return found  # listed with the import failures instead
    for t in record["tests"]:
        if t["status"] == "failed":
            found.add((t["function"], t.get("mistake") or OTHER))
    named = {f for f, mistake in found if mistake != OTHER}
    return {(f, mistake) for f, mistake in found if mistake != OTHER or f not in named}  # the rest follow from it


def write_summary(records, out):
    """records: {student: NAME.json record}. Writes OUT/summary.md (and OUT/scores.png when
    matplotlib is there); returns the path of summary.md."""
    parts = [("vae", FUNCTIONS, lambda r: r)]
    if any("flows" in r for r in records.values()):
        parts.append(("flows", PARTS["flows"], lambda r: r.get("flows")))
    scores = {}  # function -> [(student, score, max)]
    mistakes = defaultdict(set)  # (function, mistake) -> students
    import_failures, partly_run = {}, {}
    for student, record in sorted(records.items()):
        for part, functions, pick in parts:
            sub = pick(record)
            if sub is None:
                continue
            for f, (score, top) in per_function(sub, functions).items():
                scores.setdefault(f, []).append((student, score, top))
            for key in mistakes_of(sub):
                mistakes[key].add(student)
            label = student if part == "vae" else f"{student} (flows.py)"
            failed_import = [t["output"] for t in sub.get("tests", []) if t.get("mistake") == IMPORT_FAILED]
            if failed_import:
                import_failures[label] = failed_import[0]
            if sub.get("warnings"):
                partly_run[label] = sub["warnings"]
    figure = _figure(scores, os.path.join(out, "scores.png"))
    lines = ["# What the class got wrong", "",
             f"{len(records)} students graded"
             + (f", {sum('flows' in r for r in records.values())} of them with the optional flows.py" if len(parts) > 1
                else "") + ". Written by `python -m grader grade`; it names students: keep it to yourself.", ""]
    if figure:
        lines += ["![The distribution of scores per function](scores.png)", ""]
    lines += ["## Scores per function", "",
              "| function | full marks | part marks | zero | mean score |", "|---|---|---|---|---|"]
    for f, rows in scores.items():
        full = sum(score >= top - 1e-9 for _, score, top in rows)
        zero = sum(score <= 1e-9 for _, score, _ in rows)
        mean = sum(score for _, score, _ in rows) / len(rows)
        lines.append(f"| {f} | {full} | {len(rows) - full - zero} | {zero} | {mean:.1f} / {rows[0][2]:g} |")
    lines += ["", "## Mistakes, most frequent first", ""]
    if mistakes:
        lines += ["| students | function | mistake | who |", "|---|---|---|---|"]
        for (f, mistake), who in sorted(mistakes.items(), key=lambda item: (-len(item[1]), item[0])):
            lines.append(f"| {len(who)} | {f} | {_cell(mistake)} | {', '.join(sorted(who))} |")
    else:
        lines.append("None: every check that ran was passed.")
    lines += ["", "## Files that failed to import", ""]
    lines += [f"- **{s}**: {_cell(why)}" for s, why in import_failures.items()] or ["None."]
    lines += ["", "## Files whose top-level code was only partly run", "",
              "Their functions were graded; the statements named were skipped or failed.", ""]
    lines += [f"- **{s}**: {_cell(' '.join(w))}" for s, w in partly_run.items()] or ["None."]
    path = os.path.join(out, "summary.md")
    with open(path + ".part", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".part", path)
    return path


def _cell(text):
    return " ".join(str(text).split()).replace("|", "\\|")


def _figure(scores, path):
    """One histogram per function of the students' scores; False when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    functions = list(scores)
    columns = min(4, len(functions))
    rows = -(-len(functions) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False)
    for ax, f in zip(axes.flat, functions):
        top = scores[f][0][2]
        values = [score for _, score, _ in scores[f]]
        ax.hist(values, bins=[top * i / 10 for i in range(11)], color="#4c72b0", edgecolor="white")
        ax.set_title(f if len(f) < 28 else f[:26] + "…", fontsize=9)
        ax.set_xlim(0, top)
        ax.set_xlabel(f"points (of {top:g})", fontsize=8)
        ax.set_ylabel("students", fontsize=8)
        ax.yaxis.get_major_locator().set_params(integer=True)
    for ax in list(axes.flat)[len(functions):]:
        ax.axis("off")
    fig.suptitle(f"Scores per function, {max(len(v) for v in scores.values())} students", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
