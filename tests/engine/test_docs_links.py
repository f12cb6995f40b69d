"""The documentation's links hold: every link or image in README.md and docs/*.md that points at a file of
this repository names one that exists, and every anchor (#...) one that the target page has, as GitHub
makes them (headings' slugs, <a id>/<a name> tags). The README's algorithm table links each algorithm to
its section of the page its Help button opens (plugin/provider.py, HELP_PAGE)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", flags=re.M | re.S)
CODE = re.compile(r"`[^`\n]*`")
EXTERNAL = ("http://", "https://", "mailto:")


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    return CODE.sub("", FENCE.sub("", text))


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown page: explicit <a id/name> tags, and each heading's slug (its
    text without tags, lower case, punctuation dropped, spaces as hyphens; a repeated slug gets -1, -2, ...)."""
    found = set(re.findall(r'<a (?:id|name)="([^"]+)"', text))
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} +(.+?) *#* *$", FENCE.sub("", text), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", re.sub(r"<[^>]+>", "", heading).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    """Every local link of ``page`` whose file or anchor does not exist, as 'page: target (why)'."""
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in LINK.findall(prose(text)):
        if target.startswith(EXTERNAL):
            continue
        path, _, anchor = target.partition("#")
        where = (page.parent / path).resolve() if path else page
        name = f"{page.relative_to(ROOT) if page.is_relative_to(ROOT) else page.name}: {target}"
        if not where.exists():
            broken.append(f"{name} (no such file)")
        elif anchor and (where.suffix != ".md" or anchor not in anchors(where.read_text(encoding="utf-8"))):
            broken.append(f"{name} (no anchor #{anchor} in {where.name})")
    return broken


def test_every_local_link_and_image_of_the_documentation_exists():
    assert (ROOT / "docs" / "algorithms.md") in PAGES and len(PAGES) >= 6
    broken = [problem for page in PAGES for problem in broken_links(page)]
    assert not broken, "\n".join(broken)


def test_the_checker_finds_a_missing_file_a_missing_anchor_and_a_missing_image(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## The worker's `Python`\n\n<a id=\"row\"></a>\n",
                                       encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n## Same\n\n## Same\n\n"
        "[ok](other.md#the-workers-python) [ok](other.md#row) [ok](#same-1) [ok](https://example.org/x.md)\n"
        "[gone](missing.md) [no anchor](other.md#nowhere) ![no image](img/none.png) [self](#nothing)\n"
        "`[in code](missing_too.md)`\n\n```\n[in a block](missing_three.md)\n```\n", encoding="utf-8")
    assert [problem.split(": ", 1)[1] for problem in broken_links(page)] == [
        "missing.md (no such file)", "other.md#nowhere (no anchor #nowhere in other.md)",
        "img/none.png (no such file)", "#nothing (no anchor #nothing in page.md)"]


def test_the_readme_table_links_every_algorithm_to_its_help_section():
    names = set()
    for path in (ROOT / "algorithms").glob("*.py"):
        found = re.search(r'^    NAME = "(\w+)"', path.read_text(encoding="utf-8"), flags=re.M)
        if found and found.group(1):
            names.add(found.group(1))
    help_page = re.search(r'^HELP_PAGE = "https://github\.com/[^/]+/[^/]+/blob/[^/]+/([^"#]+)"$',
                          (ROOT / "plugin" / "provider.py").read_text(encoding="utf-8"), flags=re.M)
    assert help_page, "plugin/provider.py: HELP_PAGE is not a github.com blob URL"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\|[^|\n]*\[`(\w+)`\]\(([^)#]+)#(\w+)\)[^|\n]*\|", readme, flags=re.M)
    assert len(names) >= 14 and {name for name, _, _ in rows} == names
    for name, page, anchor in rows:
        assert (page, anchor) == (help_page.group(1), name), (name, page, anchor)
    sections = anchors((ROOT / help_page.group(1)).read_text(encoding="utf-8"))
    assert names <= sections, sorted(names - sections)
