#!/usr/bin/env python3
"""Checks the relative links of README.md, ARCHITECTURE.md, docs/*.md and deploy/**/README.md:
each must name a file or folder that exists, and a #fragment on a Markdown file must name one of
its headings (GitHub's anchors: lower case, punctuation dropped, spaces as -).
Links inside code blocks and HTML comments are not links. Usage: python3 .ci/check-links.py

PENDING lists pages README.md already links to that are being written on other branches: a
missing one is reported, not failed. Remove an entry once its page is merged."""
import os, pathlib, re, sys

root = pathlib.Path(__file__).resolve().parent.parent
files = [root / "README.md", root / "ARCHITECTURE.md", *sorted((root / "docs").glob("*.md")),
         *sorted((root / "deploy").rglob("README.md"))]

def prose(text):
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)

def anchors(path):
    seen, out = {}, set()
    for line in prose(path.read_text()).splitlines():
        m = re.match(r"#{1,6} +(.*)", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out

PENDING: set = set()

bad, pending = [], set()
for md in files:
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(md.read_text())):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        dest = (md.parent / path).resolve() if path else md
        rel = os.path.relpath(dest, root)
        if not dest.exists() and rel in PENDING:
            pending.add(rel)
        elif not dest.exists():
            bad.append(f"{md.relative_to(root)}: {target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            bad.append(f"{md.relative_to(root)}: {target}: no such heading in {rel}")
print(f"checked the relative links of {len(files)} Markdown files")
for page in sorted(pending):
    print(f"pending: {page} is linked to but not written yet")
if bad:
    sys.exit("broken links:\n" + "\n".join(bad))
