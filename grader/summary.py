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
from .grade import IMPORT_FAILED, NOT_ON_ROSTER

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
    return _first_cause(found)


def marks_split(rows):
    """(full marks, part marks, zero): how many of ``rows`` [(student, score, max)] got each."""
    full = sum(score >= top - 1e-9 for _, score, top in rows)
    zero = sum(score <= 1e-9 for _, score, _ in rows)
    return full, len(rows) - full - zero, zero


def advice_of(record):
    """{(function, mistake)} of the failed checks that cost no points (advice, such as stability)."""
    costly = {(t["function"], t.get("mistake") or OTHER) for t in record.get("tests", [])
              if t["status"] == "failed" and t.get("max_score", 0) > 0}
    return {(t["function"], t.get("mistake") or OTHER) for t in record.get("tests", [])
            if t["status"] == "failed" and not t.get("max_score", 0)} - costly


def _first_cause(found):
    """A function's wrong values that match no known mistake are left out where it made a named one."""
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
    advice = set()  # (function, mistake) that cost no points
    import_failures, partly_run = {}, {}
    other_version = defaultdict(dict)  # function -> {student: the variant their answer is right for}
    off_roster = [s for s, r in sorted(records.items()) if r.get("variant") == NOT_ON_ROSTER]
    for student, record in sorted(records.items()):
        for t in record.get("tests", []):
            if t.get("convention"):
                other_version[t["function"]][student] = t["convention"]
        if student in off_roster:
            continue
        for part, functions, pick in parts:
            sub = pick(record)
            if sub is None:
                continue
            for f, (score, top) in per_function(sub, functions).items():
                scores.setdefault(f, []).append((student, score, top))
            for key in mistakes_of(sub):
                mistakes[key].add(student)
            advice |= advice_of(sub)
            label = student if part == "vae" else f"{student} (flows.py)"
            failed_import = [t["output"] for t in sub.get("tests", []) if t.get("mistake") == IMPORT_FAILED]
            if failed_import:
                import_failures[label] = failed_import[0]
            if sub.get("warnings"):
                partly_run[label] = sub["warnings"]
    totals = [record["score"] for record in records.values() if "score" in record]
    figure = _figure(totals, scores, mistakes, advice, os.path.join(out, "scores.png"))
    lines = ["# What the class got wrong", "",
             f"{len(records)} students graded"
             + (f", {sum('flows' in r for r in records.values())} of them with the optional flows.py" if len(parts) > 1
                else "") + ". Written by `python -m grader grade`; it names students: keep it to yourself.", ""]
    if figure:
        lines += ["![The totals, each function's marks and the named mistakes](scores.png)", ""]
    lines += ["## Scores per function", "",
              "| function | full marks | part marks | zero | mean score |", "|---|---|---|---|---|"]
    for f, rows in scores.items():
        full, part_marks, zero = marks_split(rows)
        mean = sum(score for _, score, _ in rows) / len(rows)
        lines.append(f"| {f} | {full} | {part_marks} | {zero} | {mean:.1f} / {rows[0][2]:g} |")
    lines += ["", "## Mistakes, most frequent first", ""]
    if mistakes:
        lines += ["| students | function | mistake | who |", "|---|---|---|---|"]
        for (f, mistake), who in sorted(mistakes.items(), key=lambda item: (-len(item[1]), item[0])):
            lines.append(f"| {len(who)} | {f} | {_cell(mistake)} | {', '.join(sorted(who))} |")
    else:
        lines.append("None: every check that ran was passed.")
    if other_version or any(r.get("variant", "original") != "original" for r in records.values()):
        lines += ["", "## Answers right for another version of the assignment", "",
                  "A signal, not a verdict: each function below is right for other conventions than the version "
                  "the student was given (its own variant), such as the original coursework's, whose answers are "
                  "public. It scored 0, and the student was told which conventions it fits. A student can also "
                  "arrive there by following a textbook or another course; talk to them before concluding anything.",
                  ""]
        if other_version:
            lines += ["| function | students | right for | who |", "|---|---|---|---|"]
            for f in FUNCTIONS:
                if f in other_version:
                    who = other_version[f]
                    lines.append(f"| {f} | {len(who)} | {', '.join(sorted(set(who.values())))} | "
                                 f"{', '.join(sorted(who))} |")
        else:
            lines.append("None.")
    if off_roster:
        lines += ["", "## Not on the roster", "",
                  "These submissions match no student of the manifest: they were not graded (0, saying so). Add "
                  "them to the roster and release again, or grade them with --variant.", ""]
        lines += [f"- **{s}**" for s in off_roster]
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


SHORT = {"sample_latent_variables_from_posterior": "sampler", "bernoulli_log_prob": "Bernoulli",
         "compute_KL": "KL", "vae_lower_bound": "lower bound", "adam_step": "Adam", "constrain_u": "constrain_u",
         "planar_flow": "planar_flow", "flow_lower_bound": "flow bound"}
MISTAKES_SHOWN = 14


def _figure(totals, scores, mistakes, advice, path):
    """What an instructor deciding what to re-teach looks at: the totals' distribution; each
    function's students with full, part and zero marks; and how many students made each named
    mistake, the ones that cost points apart from advice. False when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ranked = sorted(mistakes.items(), key=lambda item: (-len(item[1]), item[0]))
    shown = ranked[:MISTAKES_SHOWN]
    fig = plt.figure(figsize=(11, 3.6 + 0.42 * max(len(shown), 2)))
    grid = fig.add_gridspec(2, 2, height_ratios=[3.0, 0.42 * max(len(shown), 2) + 0.6], width_ratios=[1, 1.25],
                            hspace=0.4, wspace=0.3)

    ax = fig.add_subplot(grid[0, 0])  # the totals
    top = 100.0
    ax.hist(totals, bins=[top * i / 10 for i in range(11)], color="#4c72b0", edgecolor="white")
    middle = ""
    if totals:
        mean, median = sum(totals) / len(totals), sorted(totals)[len(totals) // 2]
        ax.axvline(mean, color="black", linewidth=1, linestyle="--")
        middle = f" (mean {mean:.0f}, dashed; median {median:.0f})"
    ax.set_xlim(0, top)
    ax.set_title(f"Total score, {len(totals)} students{middle}", fontsize=10, loc="left")
    ax.set_xlabel("points (of 100)", fontsize=8)
    ax.set_ylabel("students", fontsize=8)
    ax.yaxis.get_major_locator().set_params(integer=True)

    ax = fig.add_subplot(grid[0, 1])  # each function: full, part, zero
    functions = list(scores)[::-1]
    colours = {"full marks": "#55a868", "part marks": "#dd8452", "zero": "#c44e52"}
    split = [marks_split(scores[f]) for f in functions]
    left = [0] * len(functions)
    for which, (label, colour) in enumerate(colours.items()):
        counts = [numbers[which] for numbers in split]
        bars = ax.barh([SHORT.get(f, f) for f in functions], counts, left=left, color=colour, label=label)
        for bar, count in zip(bars, counts):
            if count:
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_y() + bar.get_height() / 2, str(count),
                        ha="center", va="center", fontsize=7, color="white")
        left = [a + b for a, b in zip(left, counts)]
    ax.set_title("Each function: students with full, part and zero marks", fontsize=10, loc="left")
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, frameon=False)
    ax.xaxis.get_major_locator().set_params(integer=True)

    ax = fig.add_subplot(grid[1, :])  # the named mistakes
    if shown:  # each mistake's words above its bar, so that long ones need no margin
        labels = [f"{SHORT.get(f, f)}: {_short(m, 120)}" for (f, m), _ in shown][::-1]
        counts = [len(who) for _, who in shown][::-1]
        kinds = [key in advice for key, _ in shown][::-1]
        ax.barh(range(len(counts)), counts, height=0.38, color=["#b0b0b0" if a else "#c44e52" for a in kinds])
        for y, (count, label) in enumerate(zip(counts, labels)):
            ax.text(count, y, f" {count}", va="center", fontsize=7)
            ax.text(0, y + 0.24, label, va="bottom", fontsize=7.5)
        ax.set_yticks([])
        ax.set_ylim(-0.5, len(counts) - 0.1)
        from matplotlib.patches import Patch
        handles = [Patch(color="#c44e52", label="costs points")]
        if any(kinds):
            handles.append(Patch(color="#b0b0b0", label="advice, no points"))
        ax.legend(handles=handles, fontsize=7, loc="lower right", framealpha=0.95)
        ax.xaxis.get_major_locator().set_params(integer=True)
        more = f" ({len(ranked) - len(shown)} more in summary.md)" if len(ranked) > len(shown) else ""
        ax.set_title(f"Named mistakes: how many students made each{more}", fontsize=10, loc="left")
        ax.set_xlabel("students", fontsize=8)
        ax.tick_params(labelsize=8)
    else:
        ax.axis("off")
        ax.set_title("Named mistakes: none, every check that ran was passed", fontsize=10, loc="left")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return True


def _short(text, size=78):
    text = " ".join(str(text).split())
    return text if len(text) <= size else text[:size - 1] + "…"
