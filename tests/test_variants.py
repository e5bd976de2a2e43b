"""Assignment variants: names that always mean the same variant, each variant's math against
independent formulas and finite differences, its release (nothing of the solution in what
students get), and its grading in check, grade (one variant or one per student) and the bundle."""
import csv
import itertools
import json
import os
import subprocess
import sys
import zipfile

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from scipy.special import log_expit

from conftest import REPO
from grader import variants
from grader.expected import render, variant_module
from grader.grade import evaluate
from grader.paths import SOLUTION
from grader.release import solution_regions, strip_solutions
from grader.variants import AXES, ORIGINAL, POOL, Variant, VariantError, variant

S, B, K, LB, A = variants.S, variants.B, variants.K, variants.LB, variants.A
EVERY_COMBINATION = [Variant(dict(zip(AXES, values))) for values in itertools.product(*AXES.values())]
# every value of every axis at least once, beside other axes' non-original values
SAMPLE = ["logvar+prior2+pm1+descend+dataset", "prior0.5+pm1+descend", "logvar+dataset", "prior2+descend+dataset",
          "pm1+descend"]


def grader(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


# ------------------------------------------------------------------ names
def test_names_always_give_the_same_variant():
    """Pinned: a released name must never change meaning (regrades grade what students were given)."""
    pinned = {"fall2027": "logvar+prior0.5+descend", "spring2028": "logvar+descend",
              "original": "original", " Fall2027 ": "logvar+prior0.5+descend", "logvar+pm1+descend": "logvar+pm1+descend"}
    for name, canonical in pinned.items():
        assert variant(name).canonical == canonical, name
    # recorded when variants were first released (December 2026); they must never change
    assert {n: variant(n).canonical for n in ("term1", "term2", "autumn", "w26")} == {
        "term1": "prior0.5+pm1+descend", "term2": "logvar+prior2+descend", "autumn": "prior0.5+descend+dataset",
        "w26": "logvar+prior0.5+descend+dataset"}
    assert [v.canonical for v in variants.roster_variants("fall2027", 6)] == [
        "logvar+prior0.5+pm1+descend+dataset", "prior2+pm1+descend+dataset", "logvar+descend", "logvar+prior2+descend",
        "logvar+prior0.5+descend", "pm1+descend+dataset"]
    assert len(POOL) == 33 and ORIGINAL not in POOL


def test_every_variant_but_the_original_changes_at_least_three_functions():
    assert all(len(v.changed_functions()) >= 3 for v in POOL)
    assert ORIGINAL.changed_functions() == []
    roster = variants.roster_variants("any", 100)
    assert all(a != b for a, b in zip(roster, roster[1:]))  # neighbours in a roster always differ


@pytest.mark.parametrize("name, words", [("fall 2027", "one word"), ("", "one word"), ("a/b", "one word"),
                                         ("logvar", "changes 2 of the five"), ("pm1", "changes 2"),
                                         ("prior2+descend", "changes 2")])
def test_a_name_that_cannot_be_a_variant_is_refused_saying_why(name, words):
    with pytest.raises(VariantError, match=words):
        variant(name) if name else variant("  ")


# ------------------------------------------------------------------ the rendered references
def test_the_original_is_solution_vae_py_itself():
    with open(SOLUTION) as f:
        assert render(ORIGINAL) == f.read()


def _ok(a, b, rtol=1e-9):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=1e-9)


def _fd(f, x, direction, step=1e-6):
    return (np.sum(f(x + step * direction)) - np.sum(f(x - step * direction))) / (2 * step)


@pytest.mark.parametrize("v", EVERY_COMBINATION, ids=[v.canonical for v in EVERY_COMBINATION])
def test_each_combinations_reference_matches_independent_formulas_and_finite_differences(v):
    module = variant_module(v)
    rs = np.random.RandomState(0)
    batch, latent, pixels = 5, 3, 11
    mean, log_std = rs.randn(batch, latent), rs.uniform(-1.5, 1, (batch, latent))
    second = 2 * log_std if v.encoder == "log_var" else log_std
    x = np.hstack([mean, second])
    # KL: the closed form for N(m, s^2) against N(0, p^2), written the textbook's way
    s, p = np.exp(log_std), v.prior_std
    _ok(module.compute_KL(x), np.sum(np.log(p / s) + (s ** 2 + mean ** 2) / (2 * p ** 2) - 0.5, axis=-1))
    direction = rs.randn(*x.shape)
    assert np.isclose(_fd(module.compute_KL, x, direction),
                      np.sum(grad(lambda a: anp.sum(module.compute_KL(a)))(x) * direction), rtol=1e-6)
    # Bernoulli: log sigmoid(l) where the pixel is on (1 or +1), log sigmoid(-l) where it is off (0 or -1)
    on = rs.rand(batch, pixels) < 0.5
    targets = np.where(on, 1.0, -1.0 if v.pixels == "pm1" else 0.0)
    logits = 4 * rs.randn(batch, pixels)
    _ok(module.bernoulli_log_prob(targets, logits), np.sum(np.where(on, log_expit(logits), log_expit(-logits)), -1))
    d = rs.randn(*logits.shape)
    assert np.isclose(_fd(lambda l: module.bernoulli_log_prob(targets, l), logits, d),
                      np.sum(grad(lambda l: anp.sum(module.bernoulli_log_prob(targets, l)))(logits) * d), rtol=1e-6)
    assert np.all(np.isfinite(module.bernoulli_log_prob(targets, 1000 * np.sign(logits))))
    # the sampler: z = mean + sigma * eps with the noise the generator gives
    module.npr.seed(3)
    z = module.sample_latent_variables_from_posterior(x)
    eps = np.random.RandomState(3).randn(batch, latent)
    _ok(z, mean + s * eps)
    # Adam: one step by its paper, in the variant's direction
    params, g = rs.randn(4), rs.randn(4)
    step = 0.01 * g / (np.abs(g) + 1e-8)  # the first step: m_hat = g, v_hat = g^2
    new, m, vv = module.adam_step(params, g, np.zeros(4), np.zeros(4), 1, learning_rate=0.01)
    _ok(new, params + step if v.direction == "ascend" else params - step, rtol=1e-7)
    # the lower bound: its parts, reduced as the variant says
    data = np.where(rs.rand(batch, 784) < 0.3, 1.0, -1.0 if v.pixels == "pm1" else 0.0)
    gen = module.init_net_params([latent, 6, 784], rs=rs)
    rec = module.init_net_params([784, 6, 2 * latent], rs=rs)
    module.npr.seed(5)
    bound = module.vae_lower_bound(gen, rec, data)
    module.npr.seed(5)
    q = module.neural_net_predict(rec, (data + 1) / 2 if v.pixels == "pm1" else data)  # the encoder reads 0s and 1s
    per_image = (module.bernoulli_log_prob(data, module.neural_net_predict(gen, module.sample_latent_variables_from_posterior(q)))
                 - module.compute_KL(q))
    _ok(bound, np.mean(per_image) if v.bound == "mean" else variants.DATASET_SIZE / batch * np.sum(per_image))
    # binarize gives this variant's pixels
    pixels_out = module.binarize(np.array([[0, 255, 128]], np.uint8), np.float64)
    assert set(np.unique(pixels_out)) <= ({-1.0, 1.0} if v.pixels == "pm1" else {0.0, 1.0})


def test_a_variants_reference_keeps_float32_training_in_float32():
    module = variant_module(variant("logvar+prior0.5+pm1+descend+dataset"))
    x = np.random.RandomState(0).randn(3, 4).astype(np.float32)
    assert module.compute_KL(x).dtype == np.float32
    assert module.bernoulli_log_prob(np.sign(x), x).dtype == np.float32
    assert module.sample_latent_variables_from_posterior(x).dtype == np.float32


@pytest.mark.parametrize("v", POOL, ids=[v.canonical for v in POOL])
def test_every_variants_student_file_is_clean_and_holds_no_solution(v):
    source = render(v)
    student = strip_solutions(source)
    for region in solution_regions(source):
        for line in region.strip().splitlines():
            if len(line.strip()) > 20 and not line.strip().startswith("#"):
                assert line.strip() not in student, (v.canonical, line)
    assert "variant" not in student.lower() and "grader.variants" not in student
    compile(student, "vae.py", "exec")
    assert student.count("raise NotImplementedError()") == 5


# ------------------------------------------------------------------ grading
def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("name", SAMPLE + ["fall2027"])
def test_a_variants_solution_scores_100_and_the_originals_loses_every_changed_function(name, tmp_path):
    v = variant(name)
    own = evaluate(_write(tmp_path, "own.py", render(v)), include_hidden=True, variant=v)
    assert own["score"] == 100, [t["output"] for t in own["tests"] if t["status"] != "passed"]
    original = evaluate(SOLUTION, include_hidden=True, variant=v)
    assert original["score"] <= 60
    lost = {f for f, points in original["functions"].items() if points["score"] < points["max_score"]}
    assert lost == set(v.changed_functions())
    for f in lost:
        assert original["functions"][f]["score"] == 0
        outputs = [t["output"] for t in original["tests"] if t["function"] == f and not t["advice"]]
        assert all("another version of this assignment" in o for o in outputs), outputs


def test_the_original_variant_grades_as_the_kit_always_has(tmp_path):
    from submissions import BUGS, source_with
    for bug, (function, code, words) in sorted(BUGS.items()):
        path = _write(tmp_path, f"{bug}.py", source_with({function: code}))
        plain, named = evaluate(path), evaluate(path, variant="original")
        assert [(t["name"], t["score"], t["output"]) for t in plain["tests"]] == \
               [(t["name"], t["score"], t["output"]) for t in named["tests"]], bug
        assert not any("another version" in t["output"] for t in named["tests"])


def test_check_all_on_the_command_line_takes_the_variant(tmp_path):
    v = variant("prior0.5+pm1+descend")
    own = grader("check", _write(tmp_path, "vae.py", render(v)), "--all", "--variant", v.name, "--json")
    assert own.returncode == 0, own.stderr
    assert json.loads(own.stdout)["score"] == 100
    text = grader("check", SOLUTION, "--variant", v.name).stdout
    assert "compute_KL is right for the prior N(0, I), another version of this assignment; in this one the prior " \
           "is N(0, 0.5^2 I)" in text
    bad = grader("check", SOLUTION, "--variant", "fall 2027")
    assert bad.returncode == 2 and "one word" in bad.stderr


# ------------------------------------------------------------------ release, per student, grade
@pytest.fixture(scope="module")
def released(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    roster = out / "roster.csv"
    roster.write_text("Student ID,Name,Email\ns001,Ann Lee,ann@uni.edu\ns002,Bo Chan,bo@uni.edu\n"
                      "s003,Cy Diaz,cy@uni.edu\ns004,Di Eze,di@uni.edu\n")
    result = grader("release", "--variant", "fall2027", "--roster", str(roster), "--bundle-dir", str(out / "build"))
    assert result.returncode == 0, result.stderr
    return out / "build"


def _texts_of(archive):
    with zipfile.ZipFile(archive) as z:
        return {n: z.read(n) for n in z.namelist()}


def test_release_writes_every_file_of_the_variant(released):
    saved = json.loads((released / "variant.json").read_text())
    assert saved["name"] == "fall2027" and saved["canonical"] == "logvar+prior0.5+descend"
    assert saved["axes"] == {"encoder": "log_var", "prior_std": 0.5, "pixels": "01", "direction": "descend",
                             "bound": "mean"}
    assert (released / "instructor" / "solution.py").read_text() == render(variant("fall2027"))
    for name in ("vae-assignment.zip", "autograder.zip", "nbgrader/nbgrader_config.py", "nbgrader/source/vae/vae.ipynb",
                 "vae-assignment/vae.ipynb", "vae-assignment/README.md", "students/manifest.csv"):
        assert (released / name).exists(), name
    student = (released / "vae-assignment" / "vae.py").read_text()
    assert student == strip_solutions(render(variant("fall2027")))  # not stale: what the generator makes now
    readme = (released / "vae-assignment" / "README.md").read_text()
    assert "N(0, 0.5² I)" in readme and "*descends* the loss" in readme and "log-variances" in readme
    assert "flows.py" not in readme


def test_no_student_bundle_holds_solution_code_or_the_instructors_files(released):
    with open(released / "students" / "manifest.csv") as f:
        manifest = list(csv.DictReader(f))
    bundles = {"vae-assignment.zip": "fall2027", **{f"students/{r['student_id']}.zip": r["variant"] for r in manifest}}
    private = ("expected.py", "hidden.py", "batch.py", "release.py", "gradescope.py", "solution", "instructor")
    for archive, name in bundles.items():
        files = _texts_of(released / archive)
        assert not any(n.split("/")[-1] in private or "/solution/" in n for n in files), archive
        source = render(variant(name))
        for region in solution_regions(source):
            for line in region.strip().splitlines():
                if len(line.strip()) > 20 and not line.strip().startswith("#"):
                    assert not any(line.strip().encode() in text for text in files.values()), (archive, line)
        notebook = json.loads(files["vae-assignment/vae.ipynb"])
        assert "BEGIN HIDDEN TESTS" not in json.dumps(notebook) and "### BEGIN SOLUTION" not in json.dumps(notebook)


def test_a_roster_release_gives_neighbours_different_variants_and_is_stable(released, tmp_path):
    with open(released / "students" / "manifest.csv") as f:
        manifest = list(csv.DictReader(f))
    assert [r["student_id"] for r in manifest] == ["s001", "s002", "s003", "s004"]
    chosen = [r["variant"] for r in manifest]
    assert all(a != b for a, b in zip(chosen, chosen[1:]))
    assert all(variant(c).canonical == c for c in chosen)  # release --variant accepts each
    assert manifest[0]["email"] == "ann@uni.edu" and manifest[0]["release"] == "fall2027"
    for r in manifest:
        saved = json.loads(_texts_of(released / "students" / f"{r['student_id']}.zip")
                           ["vae-assignment/grader/fixtures/variant.json"])
        assert saved["canonical"] == r["variant"]


def test_each_students_bundle_self_check_knows_its_variant(released, tmp_path):
    with open(released / "students" / "manifest.csv") as f:
        row = next(csv.DictReader(f))
    with zipfile.ZipFile(released / "students" / f"{row['student_id']}.zip") as z:
        z.extractall(tmp_path)
    folder = tmp_path / "vae-assignment"
    (folder / "vae.py").write_text((released / "instructor" / f"{row['variant']}.py").read_text())
    own = subprocess.run([sys.executable, "-m", "grader", "check", "vae.py"], cwd=folder, capture_output=True,
                         text=True, timeout=120)
    assert "Total: 100 / 100" in own.stdout, own.stdout + own.stderr
    (folder / "vae.py").write_text(open(SOLUTION).read())
    public = subprocess.run([sys.executable, "-m", "grader", "check", "vae.py"], cwd=folder, capture_output=True,
                            text=True, timeout=120)
    assert "another version of this assignment" in public.stdout
    assert float(public.stdout.split("Total: ")[1].split(" /")[0]) <= 60


def test_grade_with_the_manifest_grades_each_student_against_their_own(released, tmp_path):
    with open(released / "students" / "manifest.csv") as f:
        manifest = list(csv.DictReader(f))
    folder = tmp_path / "class"
    folder.mkdir()
    instructor = released / "instructor"
    (folder / "s001.py").write_text((instructor / f"{manifest[0]['variant']}.py").read_text())
    (folder / "s002.py").write_text((instructor / f"{manifest[1]['variant']}.py").read_text())
    (folder / "s003.py").write_text((instructor / f"{manifest[1]['variant']}.py").read_text())  # a neighbour's
    (folder / "stranger.py").write_text(open(SOLUTION).read())
    out = tmp_path / "out"
    result = grader("grade", str(folder), "--out", str(out), "--manifest", str(released / "students" / "manifest.csv"),
                    "--no-sandbox")
    assert result.returncode == 0, result.stderr
    with open(out / "grades.csv") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert rows["s001"]["total"] == "100.0" and rows["s002"]["total"] == "100.0"
    assert rows["s001"]["variant"] == manifest[0]["variant"]
    assert float(rows["s003"]["total"]) < 100
    assert "another version of this assignment" in (out / "s003.txt").read_text()
    assert rows["stranger"]["variant"] == "not on the roster" and rows["stranger"]["total"] == "0.0"
    assert "not on the roster" in (out / "stranger.txt").read_text() and "stranger" in result.stderr
    summary = (out / "summary.md").read_text()
    assert "## Answers right for another version of the assignment" in summary and "s003" in summary
    # a rerun against another variant grades again: no stale grade of the first
    again = grader("grade", str(folder), "--out", str(out), "--variant", manifest[0]["variant"], "--no-sandbox")
    assert again.returncode == 0, again.stderr
    with open(out / "grades.csv") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert rows["s001"]["total"] == "100.0" and float(rows["s002"]["total"]) < 100
    assert {r["variant"] for r in rows.values()} == {manifest[0]["variant"]}


def test_a_variant_trains_and_writes_its_figures(tmp_path):
    from conftest import write_raw_tiny_mnist
    data = tmp_path / "mnist"
    write_raw_tiny_mnist(str(data))
    result = subprocess.run([sys.executable, os.path.join(REPO, "solution", "vae.py"), "--variant", "prior2+pm1+descend",
                             "--epochs", "2", "--latent-dim", "4", "--hidden", "16", "--batch-size", "100",
                             "--data-dir", str(data), "--quiet"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "results" / "variant-prior2+pm1+descend"
    history = json.loads((folder / "history.json").read_text())["history"]
    assert len(history) == 2 and all(np.isfinite(h["test"]) and h["test"] < 0 for h in history)
    assert history[1]["train"] > history[0]["train"]  # descending the loss raises the bound
    assert (folder / "samples.png").exists()


def test_pytest_grader_takes_the_variant(tmp_path):
    own = _write(tmp_path, "own.py", render(variant("fall2027")))
    run = lambda path: subprocess.run([sys.executable, "-m", "pytest", "grader", "--submission", path, "--variant",
                                       "fall2027", "-q", "-p", "no:cacheprovider"], cwd=REPO, capture_output=True,
                                      text=True, timeout=300)
    passed = run(own)
    assert passed.returncode == 0, passed.stdout[-2000:]
    failed = run(SOLUTION)
    assert failed.returncode == 1 and "another version of this assignment" in failed.stdout


@pytest.mark.parametrize("roster, words", [("name\nAnn\n", "no student-id column"), ("id\ns1\ns1\n", "there twice"),
                                           ("id\n../x\n", "characters a file name cannot"), ("id\n", "no students")])
def test_a_bad_roster_is_refused_before_anything_is_written(roster, words, tmp_path):
    (tmp_path / "roster.csv").write_text(roster)
    result = grader("release", "--variant", "fall2027", "--roster", str(tmp_path / "roster.csv"),
                    "--bundle-dir", str(tmp_path / "build"))
    assert result.returncode == 2 and words in result.stderr and not (tmp_path / "build").exists()
