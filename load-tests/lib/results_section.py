"""Replaces (or appends) one '## ' section of load-tests/RESULTS.md: each scenario script owns
its section and a re-run replaces it. Used as a module by the scripts' report snippets."""
import os


def replace_section(results, lines):
    text = open(results).read() if os.path.exists(results) else ""
    start = text.find(lines[0] + "\n")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + text[end + 1:] if end >= 0 else text[:start]
    with open(results, "w") as f:
        f.write(text.rstrip("\n") + "\n\n" + "\n".join(lines))
