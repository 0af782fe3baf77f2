"""The docs say what the code does and point only at what the repository holds (issue #20 item 5).

- docs/kpis.md is generated from kpi_models/catalogue.yaml: regenerating it gives the same text;
- every relative link of README.md and docs/**/*.md resolves to a file in the repository (and its #anchor to a
  heading of that file);
- every "issue #N" of the code and docs (not another repository's "owner/name issue #N") has docs/issues/N.md;
- every "rule N" the code cites is a numbered rule of docs/kpi-rules.md.
"""

import re
from pathlib import Path

import pytest

from kpi_models import docs_gen

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("connectors", "pipelines", "kpi_models", "sandbox", "tests", "bench", "deploy", "docs", "config")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sql", ".j2", ".toml"}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
ISSUE = re.compile(r"\bissues?\s+#(\d+)", re.IGNORECASE)
# another repository's issue: "owner/name issue #N", possibly with a version between ("matomo-org/matomo 5.x; issues")
FOREIGN = re.compile(r"[\w.-]+/[\w.-]+(?:\s+[\w.;]+)?\s+$")
RULE = re.compile(r"\brule (\d+)\b")


def repository_texts() -> dict[Path, str]:
    """The project's own text files: code, SQL, config and docs (the README and Makefile too)."""
    files = [REPO / "README.md", REPO / "Makefile", REPO / "pyproject.toml"]
    for folder in SCANNED:
        files += [p for p in (REPO / folder).rglob("*") if p.suffix in SUFFIXES and "__pycache__" not in p.parts]
    return {p: p.read_text(encoding="utf-8", errors="replace") for p in files if p.is_file()}


def markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file (lower case, punctuation dropped, spaces to hyphens)."""
    out = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return out


def test_kpis_md_is_generated_from_the_catalogue():
    written = (REPO / "docs" / "kpis.md").read_text(encoding="utf-8")
    assert written == docs_gen.render(), f"docs/kpis.md is out of date: run `{docs_gen.COMMAND}`"


def test_kpis_md_lists_every_kpi_with_its_formula():
    from kpi_models.catalogue import load_catalogue

    text = (REPO / "docs" / "kpis.md").read_text(encoding="utf-8")
    for kpi in load_catalogue().kpis.values():
        row = next((line for line in text.splitlines() if line.startswith(f"| `{kpi.kpi}` |")), None)
        assert row is not None, kpi.kpi
        assert " ".join(kpi.formula.split()).replace("|", "\\|") in row


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(path):
    broken = []
    for match in LINK.finditer(path.read_text(encoding="utf-8")):
        target = match.group(1) or match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("mailto:"):
            continue  # an absolute URL: not a file of the repository
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists() or REPO not in (resolved, *resolved.parents):
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(target)
    assert not broken, f"{path.relative_to(REPO)} links to what the repository does not hold: {broken}"


def test_foreign_issue_references_are_told_apart():
    def ours(text: str) -> list[str]:
        return [m.group(1) for m in ISSUE.finditer(text) if not FOREIGN.search(text[:m.start()])]

    assert ours("(issue #19) and issues #16") == ["19", "16"]
    assert ours("PipedreamHQ/pipedream issue #15060; matomo-org/matomo 5.x; issues #18055") == []
    assert ours("googleanalytics/google-analytics-mcp\n issue " + "#187") == []  # split: this file is scanned too


def test_every_issue_reference_has_its_document():
    missing: dict[str, list[str]] = {}
    for path, text in repository_texts().items():
        for match in ISSUE.finditer(text):
            if FOREIGN.search(text[max(0, match.start() - 120):match.start()]):
                continue
            if not (REPO / "docs" / "issues" / f"{match.group(1)}.md").is_file():
                missing.setdefault(match.group(1), []).append(str(path.relative_to(REPO)))
    assert not missing, f"issue references without docs/issues/N.md: {missing}"
    index = (REPO / "docs" / "issues" / "README.md").read_text(encoding="utf-8")
    for doc in (REPO / "docs" / "issues").glob("[0-9]*.md"):
        assert f"]({doc.name})" in index, f"docs/issues/README.md does not list {doc.name}"


def test_every_cited_rule_is_a_numbered_kpi_rule():
    rules = {int(n) for n in re.findall(r"^(\d+)\. \*\*", (REPO / "docs" / "kpi-rules.md").read_text(encoding="utf-8"),
                                        re.MULTILINE)}
    assert rules == set(range(1, len(rules) + 1)) and rules
    cited = {int(n) for text in repository_texts().values() for n in RULE.findall(text)}
    assert cited <= rules, f"rules cited but not in docs/kpi-rules.md: {sorted(cited - rules)}"
