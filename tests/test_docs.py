"""The project's Markdown pages: every relative link resolves (its file, and its #anchor as GitHub makes heading
anchors), the README links every docs page and stays a short page for users. Cheap: files only, no subprocess."""
import re
import unicodedata
from urllib.parse import unquote

import pytest

from conftest import REPO_ROOT

# the pages of the repository, explicitly (never run folders under experiment/, prepared datasets or ../shared)
PAGE_GLOBS = ["README.md", "CHANGELOG.md", "docs/*.md", "datasets/README.md", "experiment/README.md"]
README_MAX_LINES = 300

FENCE = re.compile(r"^ *(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+).+?\1")
EXTERNAL = ("http://", "https://", "mailto:", "ftp://")
WORD_CATEGORIES = {"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Pc"}  # Ruby's \p{Word}, as GitHub


def pages():
    found = {path for pattern in PAGE_GLOBS for path in REPO_ROOT.glob(pattern) if path.is_file()}
    return sorted(found)


def prose_lines(text):
    """The lines outside fenced code blocks."""
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            yield line


def github_slug(heading):
    """GitHub's anchor for a heading: the rendered text lower-cased, everything but letters, marks, digits, `_`, `-`
    and spaces dropped, spaces turned into `-`."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # a link shows its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    kept = "".join(c for c in text if c in "-_ " or unicodedata.category(c) in WORD_CATEGORIES)
    return kept.replace(" ", "-")


def anchors(path):
    """Every heading anchor of a page, with GitHub's -1, -2, ... for repeated headings."""
    seen, result = {}, set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = github_slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def links(path):
    for line in prose_lines(path.read_text(encoding="utf-8")):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            yield match.group(1)


def test_the_page_list_holds_the_readme_the_docs_and_nothing_generated():
    names = {path.relative_to(REPO_ROOT).as_posix() for path in pages()}
    assert {"README.md", "CHANGELOG.md", "docs/model_zoo.md", "datasets/README.md", "experiment/README.md"} <= names
    assert all(name.count("/") <= 1 for name in names), names


@pytest.mark.parametrize("page", pages(), ids=lambda path: path.relative_to(REPO_ROOT).as_posix())
def test_every_relative_link_resolves_to_a_file_and_its_anchor(page):
    broken = []
    for target in links(page):
        if target.startswith(EXTERNAL):
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (page.parent / unquote(file_part)).resolve() if file_part else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and unquote(anchor) not in anchors(resolved):
            broken.append(f"{target}: no heading with anchor #{anchor} in {resolved.name}")
    assert not broken, f"{page.relative_to(REPO_ROOT)}: " + "; ".join(broken)


def test_the_readme_links_every_docs_page():
    readme = REPO_ROOT / "README.md"
    linked = {(REPO_ROOT / target.partition("#")[0]).resolve() for target in links(readme)}
    unlinked = [path.name for path in sorted((REPO_ROOT / "docs").glob("*.md")) if path.resolve() not in linked]
    assert not unlinked, f"README.md links no docs/{unlinked}"


def test_the_readme_is_short():
    lines = (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move depth into docs/"


def test_the_slug_rules_match_github():
    assert github_slug("Configuration: where each value comes from") == "configuration-where-each-value-comes-from"
    assert github_slug("Loading modes and the binary cache (`--ext`)") == "loading-modes-and-the-binary-cache---ext"
    assert github_slug("The spectral ratio-index loss (this project's definition)") == \
        "the-spectral-ratio-index-loss-this-projects-definition"
    assert github_slug("Training at scale (torchrun)") == "training-at-scale-torchrun"
