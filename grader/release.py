"""Generate the student files from the reference, the way nbgrader does.

Each region between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (the delimiters
nbgrader uses) is replaced by nbgrader's own stub, at the region's indentation:

    # YOUR CODE HERE
    raise NotImplementedError()

Everything outside the regions, including the TODO comment each solution carries just
above its region, reaches the students unchanged.
"""
import os
import re

from .paths import GENERATED, ROOT, SOLUTION

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
_MARKER = re.compile(r"^(\s*)(### (?:BEGIN|END) SOLUTION)\s*$")


class ReleaseError(ValueError):
    """The reference's solution markers are malformed."""


def strip_solutions(source, name="solution/vae.py"):
    """Return ``source`` with every solution region replaced by the stub."""
    out, inside, begin_line = [], False, 0
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        match = _MARKER.match(line)
        if not match:
            if not inside:
                out.append(line)
            continue
        indent, marker = match.groups()
        if marker == BEGIN:
            if inside:
                raise ReleaseError(f"{name}:{number}: {BEGIN} inside the region opened at line {begin_line}")
            inside, begin_line = True, number
            out.extend(f"{indent}{stub}\n" for stub in STUB)
        else:
            if not inside:
                raise ReleaseError(f"{name}:{number}: {END} without a {BEGIN} before it")
            inside = False
    if inside:
        raise ReleaseError(f"{name}:{begin_line}: {BEGIN} is never closed by {END}")
    return "".join(out)


def solution_regions(source):
    """The text inside each solution region (what students must not receive)."""
    return re.findall(rf"^[ \t]*{BEGIN}[ \t]*\n(.*?)^[ \t]*{END}", source, flags=re.S | re.M)


def assignment_source(solution_path=SOLUTION):
    with open(solution_path) as f:
        return strip_solutions(f.read(), os.path.relpath(solution_path))


def write_atomically(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".part"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def fixtures_are_current():
    import numpy as np
    from .grade import FIXTURES, compute_fixtures
    if not os.path.exists(FIXTURES):
        return False, compute_fixtures
    with np.load(FIXTURES, allow_pickle=False) as saved:
        stored = {k: saved[k] for k in saved.files}
    fresh = compute_fixtures()
    same = stored.keys() == fresh.keys() and all(
        stored[k].shape == fresh[k].shape and np.allclose(stored[k], fresh[k], rtol=1e-12, atol=1e-14, equal_nan=True)
        for k in fresh)
    return same, lambda: fresh


def write_fixtures(values):
    import numpy as np
    from .grade import FIXTURES
    os.makedirs(os.path.dirname(FIXTURES), exist_ok=True)
    tmp = FIXTURES + ".part.npz"
    np.savez_compressed(tmp, **values)
    os.replace(tmp, FIXTURES)


def release(check_only=False):
    """Write assignment/vae.py and the public checks' expected values; with ``check_only``,
    write nothing and return the stale paths."""
    from .grade import FIXTURES
    stale = []
    for solution, assignment in GENERATED:
        text = assignment_source(solution)
        current = open(assignment).read() if os.path.exists(assignment) else None
        if current != text:
            stale.append(assignment)
            if not check_only:
                write_atomically(assignment, text)
    current, fresh = fixtures_are_current()
    if not current:
        stale.append(FIXTURES)
        if not check_only:
            write_fixtures(fresh())
    return stale


# ------------------------------------------------------------------ the student bundle
# What students receive of the grader: enough to judge their file against the public
# checks' stored expected values. Not expected.py (the reference's values and the
# mistakes' formulas), hidden.py, batch grading or this release code.
BUNDLED_GRADER = ("__init__.py", "__main__.py", "paths.py", "intake.py", "registry.py", "checks.py", "flow_checks.py",
                  "parts.py", "grade.py", "runner.py", "variants.py",
                  "child.py", "stand_ins.py", "isolation.py", "notebook.py", "config.json", "conftest.py", "test_submission.py",
                  "fixtures/public.npz")
STUDENT_GUIDE = os.path.join(ROOT, "docs", "students.md")  # the bundle's README.md: one page, kept in one place


# What in requirements.txt only the kit itself needs (the report, nbgrader, its own tests' YAML),
# with the comments that introduce them: students get the rest.
KIT_ONLY_REQUIREMENTS = ("scikit-learn", "nbgrader", "nbformat", "nbconvert", "pyyaml", "# the report", "# instructors")


# Of requirements.txt's Python 3.9 bounds, those on what students install (pip 26's resolution of
# the student's requirements on 3.9); the others bound nbgrader's Jupyter, which students never get.
STUDENT_PY39_BOUNDS = ("autograd", "importlib-resources", "iniconfig", "joblib", "mlxtend", "pytest", "zipp")


def student_requirements():
    """requirements.txt as the student bundle has it: without what only the kit needs."""
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        lines = f.read().splitlines()

    def students_need(line):
        if line.startswith(KIT_ONLY_REQUIREMENTS):
            return False
        return 'python_version < "3.10"' not in line or line.startswith(tuple(b + "<" for b in STUDENT_PY39_BOUNDS))
    return "\n".join(line for line in lines if students_need(line)) + "\n"


def variant_source(variant):
    """The complete reference of ``variant`` (solution/vae.py itself for the original)."""
    from .expected import render
    from .variants import variant as variant_named
    return render(variant_named(variant))


# What the student guide says of each graded function in a variant other than the original: the
# row of its table, in that variant's conventions.
def guide_rows(variant):
    sample = ("one reparameterized sample z = mean + exp(0.5 · log_var) · eps per row, (batch, L)"
              if variant.encoder == "log_var" else "one reparameterized sample z = mean + exp(log_std) · eps per row, (batch, L)")
    pixels = "targets −1 or +1" if variant.pixels == "pm1" else "targets 0 or 1"
    prior = "N(0, I)" if variant.prior_std == 1.0 else f"N(0, {variant.prior_std:g}² I)"
    second = "means and log-variances" if variant.encoder == "log_var" else "means and log standard deviations"
    bound = ("one-sample estimate of the ELBO, averaged over the batch" if variant.bound == "mean" else
             "one-sample estimate of the ELBO of the whole training set: N / batch size × the batch's sum")
    if variant.pixels == "pm1":
        bound += "; the encoder reads (data + 1) / 2"
    step = "*ascends* the bound" if variant.direction == "ascend" else "*descends* the loss −L"
    return (f"| `sample_latent_variables_from_posterior(encoder_output)` | {sample} |\n"
            f"| `bernoulli_log_prob(targets, logits)` | log p(x \\| z) summed over pixels ({pixels}), (batch,), "
            f"stable for \\|logits\\| up to 1000 |\n"
            f"| `compute_KL(q_means_and_log_stds)` | KL(q(z\\|x) ‖ {prior}) per row, from the {second}, (batch,) |\n"
            f"| `vae_lower_bound(gen_params, rec_params, data)` | {bound} |\n"
            f"| `adam_step(params, gradient, m, v, t, ...)` | one bias-corrected Adam step that {step} |\n")


def student_guide(variant):
    """docs/students.md as the bundle of ``variant`` has it: the original's as it is; another's with
    its own table of the five functions, its own example and no optional flows.py part."""
    with open(STUDENT_GUIDE, encoding="utf-8") as f:
        text = f.read()
    if variant.is_original:
        return text
    table = re.search(r"\| `sample_latent_variables_from_posterior.*?\n(?=\n)", text, flags=re.S)
    example = re.search(r"```\ncompute_KL {20,}.*?```\n", text, flags=re.S)
    flows = re.search(r"## The optional part: planar flows\n.*?(?=<!--)", text, flags=re.S)
    if not (table and example and flows):
        raise ReleaseError("docs/students.md: the table of the five functions, the compute_KL example or the "
                           "optional part's section was not found (release rewrites them for a variant)")
    text = (text[:table.start()] + guide_rows(variant) + text[table.end():example.start()] +
            "```\nadam_step                                            0.0 / 15\n  ✗ first step  (0 / 3)\n"
            "      step 1: the bias correction is missing: divide m by 1 - beta1^t and v by 1 - beta2^t\n```\n" +
            text[example.end():flows.start()] + text[flows.end():])
    return text.replace("package, a small `grader/` for checking your work, and `flows.py` for the optional part.",
                        "package and a small `grader/` for checking your work.").replace(
        "# The VAE assignment: a student's guide\n",
        "# The VAE assignment: a student's guide\n\nThis version's conventions are stated in `vae.py`'s docstrings; "
        "read them, not another version's.\n")


def bundle_files(variant=None):
    """{path in the bundle: text or bytes}: what the students of ``variant`` (a name or a Variant;
    None: the original, the kit's own checked-in files) receive."""
    from .grade import compute_fixtures
    from .variants import ORIGINAL, variant as variant_named
    variant = ORIGINAL if variant is None else variant_named(variant)
    if variant.is_original:
        files = {os.path.basename(a): assignment_source(s) for s, a in GENERATED}
    else:
        files = {"vae.py": strip_solutions(variant_source(variant), f"solution/vae.py as variant {variant.canonical}")}
    files.update({"README.md": student_guide(variant), "requirements.txt": student_requirements(),
                  "training_tools.py": open(os.path.join(ROOT, "assignment", "training_tools.py")).read()})
    for name in sorted(os.listdir(os.path.join(ROOT, "data"))):
        if name.endswith(".py"):
            files[f"data/{name}"] = open(os.path.join(ROOT, "data", name)).read()
    for name in BUNDLED_GRADER:
        path = os.path.join(ROOT, "grader", name)
        files[f"grader/{name}"] = open(path, "rb").read()
    if variant.is_original:
        files["grader/fixtures/vae_stub.py"] = files["vae.py"]  # what a graded flows.py imports (runner.companion_vae)
    else:
        files["grader/fixtures/public.npz"] = npz_bytes(compute_fixtures(variant))
    files["grader/fixtures/variant.json"] = variant_json(variant)
    return files


def variant_json(variant, for_students=True):
    """variant.json: the name and every axis' value (and, for the instructor, which functions differ
    from the original's)."""
    import json
    saved = variant.as_json()
    if for_students:
        saved.pop("changed_functions")
    return json.dumps(saved, indent=1) + "\n"


def npz_bytes(values):
    import io
    import numpy as np
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **values)
    return buffer.getvalue()


def write_bundle(files, out_dir, name="vae-assignment", keep_folder=True):
    """FILES as OUT_DIR/NAME/ and OUT_DIR/NAME.zip (the zip holds NAME/...); returns (folder, zip)."""
    import shutil
    import zipfile
    folder = os.path.join(out_dir, name)
    shutil.rmtree(folder, ignore_errors=True)
    for path, content in files.items():
        target = os.path.join(folder, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
    archive = os.path.join(out_dir, f"{name}.zip")
    with zipfile.ZipFile(archive + ".part", "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(files):
            z.write(os.path.join(folder, path), f"vae-assignment/{path}")
    os.replace(archive + ".part", archive)
    if not keep_folder:
        shutil.rmtree(folder)
    return folder, archive


def build_bundle(out_dir, variant=None):
    """Write the student bundle of ``variant`` as OUT_DIR/vae-assignment/ and OUT_DIR/vae-assignment.zip."""
    return write_bundle(bundle_files(variant), out_dir)
