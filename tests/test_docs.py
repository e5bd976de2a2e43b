"""The pages stay honest: the README and every page of docs/ link only to files and headings
that exist, and every command of the kit's that they show is accepted, subcommand and
options, by the program it names (its own --help lists them)."""
import functools
import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import REPO

PAGES = ["README.md"] + sorted(os.path.join("docs", n) for n in os.listdir(os.path.join(REPO, "docs"))
                               if n.endswith(".md"))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading):
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(path):
    with open(path, encoding="utf-8") as f:
        return {slug(line.lstrip("#")) for line in f if line.startswith("#")}


@pytest.mark.parametrize("page", PAGES)
def test_every_link_leads_somewhere(page):
    text = open(os.path.join(REPO, page), encoding="utf-8").read()
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+://", target):
            continue  # the web: not checked here
        file, _, anchor = target.partition("#")
        path = os.path.normpath(os.path.join(REPO, os.path.dirname(page), file)) if file else os.path.join(REPO, page)
        if not os.path.exists(path):
            broken.append(f"{target}: no such file")
        elif anchor and path.endswith(".md") and anchor not in anchors(path):
            broken.append(f"{target}: no such heading")
    assert not broken, f"{page}: {broken}"


def test_the_readme_is_a_front_page():
    lines = open(os.path.join(REPO, "README.md"), encoding="utf-8").read().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines"
    for page in PAGES[1:]:
        if page != os.path.join("docs", "report.md"):  # the generated report is linked from report-authors.md
            assert f"]({page})" in "\n".join(lines), f"README.md does not link {page}"


def commands(page):
    """(line, words) of each command of the kit's in the page's bash blocks, comments dropped."""
    text = open(os.path.join(REPO, page), encoding="utf-8").read()
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():  # a line continued with \ is one
            line = re.sub(r"\s+#.*$", "", line).strip()
            if not line or line.startswith("#"):
                continue
            for part in line.split("&&"):
                words = shlex.split(part.replace("[", "").replace("]", ""))
                if words[:1] == ["python"] and words[1:2] != ["-m"] or words[:3] == ["python", "-m", "grader"] \
                        or words[:2] == ["pytest", "grader"]:
                    found.append((line, words))
    return found


SCRIPTS = {"vae.py": "solution/vae.py", "flows.py": "solution/flows.py",
           "assignment/vae.py": "solution/vae.py", "assignment/flows.py": "solution/flows.py"}


@functools.lru_cache(maxsize=None)
def help_of(*program):
    result = subprocess.run([sys.executable, *program, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{program} --help failed: {result.stderr[-500:]}"
    return result.stdout


def test_the_pages_show_commands():
    assert sum(len(commands(page)) for page in PAGES) >= 20


@pytest.mark.parametrize("page", PAGES)
def test_every_command_is_accepted_by_its_program(page):
    for line, words in commands(page):
        options = [w.split("=")[0] for w in words if w.startswith("--")]
        if words[:2] == ["pytest", "grader"]:
            text = open(os.path.join(REPO, "grader", "conftest.py")).read()
            assert all(f'"{o}"' in text for o in options), f"{page}: {line}"
            continue
        if words[1:3] == ["-m", "grader"]:
            shown = help_of("-m", "grader")
            command = words[3]
            assert re.search(r"\{[^}]*\b" + re.escape(command) + r"\b", shown), f"{page}: no command {command}: {line}"
            shown = help_of("-m", "grader", command)
        else:
            script = SCRIPTS.get(words[1], words[1])
            assert os.path.exists(os.path.join(REPO, script)), f"{page}: no script {words[1]}: {line}"
            shown = help_of(script)
        unknown = [o for o in options if o not in shown]
        assert not unknown, f"{page}: {line}: {unknown} are not options of it"
