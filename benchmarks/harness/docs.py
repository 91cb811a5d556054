"""docs/benchmarks.md: each script owns one section, between `<!-- name:start -->` and
`<!-- name:end -->`, and replaces only that one.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness import ROOT

DOC = ROOT / "docs" / "benchmarks.md"


def replace_section(doc: str, name: str, text: str, heading: str = "") -> str:
    """`doc` with the text between section `name`'s markers replaced by `text`.

    Args:
        doc: the whole markdown document.
        name: the section's name, as in its markers.
        text: the new content; one line break is kept on each side of it.
        heading: a line put above the markers when the section is new (appended at the end).

    Returns:
        The new document; everything outside the section is as it was.

    Raises:
        ValueError: the start marker is there but no end marker follows it.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in doc:
        doc += f"\n{heading}\n{start}\n{end}\n" if heading else f"\n{start}\n{end}\n"
    head, rest = doc.split(start, 1)
    if end not in rest:
        raise ValueError(f"{start} without {end} after it")
    tail = rest.split(end, 1)[1]
    body = text.strip("\n")
    return f"{head}{start}\n{body}\n{end}{tail}"


def write_section(name: str, text: str, heading: str = "", path: Path = DOC) -> None:
    """Replace section `name` of `path` (docs/benchmarks.md; created if missing) by `text`."""
    doc = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(replace_section(doc, name, text, heading))


def publish(name: str, lines: list[str], heading: str, write: bool = True) -> None:
    """Print a benchmark's lines and, if `write`, make them section `name` of benchmarks.md."""
    text = "\n".join(lines)
    print(text, flush=True)
    if write:
        write_section(name, text, heading)


def rate_table(runs: dict, labels: dict, conns: list) -> list[str]:
    """Markdown lines: one row per server in `labels` found in `runs`, req/s and p50 / p99 per c.

    `runs[key][c]` holds `rps`, `errors`, `p50` and `p99` (ms) measured at `c` connections.
    """
    head = "| server | " + " | ".join(f"c={c} req/s | c={c} p50 / p99 ms" for c in conns)
    lines = [head + " |", "|---|" + "---|---|" * len(conns)]
    for key, label in labels.items():
        if key not in runs:
            continue
        cells = " | ".join(
            f"{runs[key][c]['rps']:.0f}"
            + (f" ({runs[key][c]['errors']} err)" if runs[key][c]["errors"] else "")
            + f" | {runs[key][c]['p50']:.1f} / {runs[key][c]['p99']:.1f}"
            for c in conns
        )
        lines.append(f"| {label} | {cells} |")
    return lines
