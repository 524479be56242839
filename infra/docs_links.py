"""Every link of the built book resolves: each relative link (href, src) of every generated
page names a file of the book — or, for the repository's own files linked from the docs, a file
of the repository — and each #fragment an id on the page it points to. External links (http,
https, mailto) are not fetched: the check runs offline. Prints every broken link with its page
and fails if there is any; a page of docs/src missing from SUMMARY.md fails too (mdBook would
silently leave it out of the book). The error table (docs/src/api/errors.md) must list exactly
the codes of functions/api/src/error_code.rs, once each."""

import os
import re
import sys
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        for key in ("href", "src"):
            if attrs.get(key) is not None and tag not in ("link", "script"):
                self.links.append(attrs[key])


def parse(path):
    page = Page()
    with open(path, encoding="utf-8") as f:
        page.feed(f.read())
    return page


def main(book, sources):
    repo = os.path.dirname(os.path.abspath(sources.rstrip("/")))  # docs/
    repo = os.path.dirname(repo)
    pages = {}
    for root, _, files in os.walk(book):
        for name in files:
            if name.endswith(".html"):
                path = os.path.join(root, name)
                pages[os.path.normpath(path)] = parse(path)
    broken = []
    for path, page in pages.items():
        if os.path.basename(path) in ("print.html", "404.html", "toc.html"):
            continue
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//"):
                continue
            target = path if not parts.path else os.path.normpath(
                os.path.join(os.path.dirname(path), unquote(parts.path)))
            if not os.path.exists(target):
                # A link to a file of the repository (source, template), outside the book.
                outside = os.path.normpath(os.path.join(sources, os.path.relpath(target, book)))
                if parts.path and os.path.exists(outside) and outside.startswith(repo):
                    continue
                broken.append(f"{os.path.relpath(path, book)}: {link} (no such page or file)")
                continue
            if parts.fragment and target.endswith(".html"):
                ids = pages[target].ids if target in pages else parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{os.path.relpath(path, book)}: {link} (no #{parts.fragment} there)")
    with open(os.path.join(sources, "SUMMARY.md"), encoding="utf-8") as f:
        listed = set(re.findall(r"\]\(([^)#]+\.md)", f.read()))
    for root, _, files in os.walk(sources):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), sources)
            if name.endswith(".md") and name != "SUMMARY.md" and rel not in listed:
                broken.append(f"{rel}: not in SUMMARY.md, so not in the book")
    broken += error_table(repo, sources)
    if broken:
        sys.exit("docs: broken links or errors table:\n  " + "\n  ".join(sorted(broken)))


def error_table(repo, sources):
    """The first column of the errors page's table against the api's one list of codes."""
    with open(os.path.join(repo, "functions/api/src/error_code.rs"), encoding="utf-8") as f:
        codes = re.findall(r'^\s*[A-Z][A-Za-z]* => "([a-z_]+)",', f.read(), re.M)
    with open(os.path.join(sources, "api/errors.md"), encoding="utf-8") as f:
        listed = re.findall(r"^\| `([a-z_]+)` \|", f.read(), re.M)
    problems = []
    if not codes:
        problems.append("functions/api/src/error_code.rs: no codes found (has its list changed shape?)")
    for code in sorted(set(codes) - set(listed)):
        problems.append(f"api/errors.md: `{code}` (error_code.rs) has no row")
    for code in sorted(set(listed) - set(codes)):
        problems.append(f"api/errors.md: `{code}` is not a code of error_code.rs")
    for code in sorted({c for c in listed if listed.count(c) > 1}):
        problems.append(f"api/errors.md: `{code}` has more than one row")
    return problems


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
