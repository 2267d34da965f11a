"""The package's shape in figures, at any revision: modules, lines, functions, import arrows between modules, floors.

    .venv/bin/python tools/code_figures.py                 # the working tree
    .venv/bin/python tools/code_figures.py cb6c5b4^ HEAD   # revisions side by side (git archive into a temporary folder)
    .venv/bin/python tools/code_figures.py --json A B      # the same as JSON

What it counts, in the exported package `neuroseg/*.py` (`_modidx.py`, nbdev's generated index, left out):
- lines (physical) and lines longer than LIMIT characters; the longest module;
- functions and methods (ast): their count, median and longest length in lines, public ones with a docstring;
- import arrows: module A imports module B of the package, at the top or inside a function (a lazy import is still a
  dependency); cycles; arrows that run "up", from an earlier notebook to a later one (notebook order = `nbs/` order of
  the `#| default_exp` cells);
- floors: the longest chain of arrows below a module plus one (a module that imports nothing of the package is floor 1).

The standard library's `ast` does the reading, so the figures are those of the code, not of a regular expression.
"""
from __future__ import annotations
import argparse, ast, json, re, statistics, subprocess, sys, tarfile, tempfile, io
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 120

def notebook_order(root: Path) -> dict[str, int]:
    "Module name -> position of its notebook in nbs/ (sorted by file name, as nbdev lists them)."
    order = {}
    for i, nb in enumerate(sorted((root/"nbs").glob("*.ipynb"))):
        m = re.search(r"#\|\s*default_exp\s+(\w+)", nb.read_text())
        if m: order[m.group(1)] = i
    return order

def package_imports(tree: ast.AST, names: set[str]) -> set[str]:
    "The package modules a module imports, anywhere in it."
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level >= 1:
                if mod: found.add(mod.split(".")[0])
                else: found |= {a.name for a in node.names if a.name in names}
            elif mod.startswith("neuroseg."): found.add(mod.split(".")[1])
            elif mod == "neuroseg": found |= {a.name for a in node.names if a.name in names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("neuroseg.")}
    return found & names

def functions(tree: ast.AST, module: str) -> list[dict]:
    "Every function and method: name, lines, public, docstring."
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.append(dict(name=f"{module}.{node.name}", lines=node.end_lineno - node.lineno + 1,
                            public=not node.name.startswith("_"), doc=ast.get_docstring(node) is not None))
    return out

def floors(arrows: dict[str, set[str]]) -> dict[str, int]:
    "Floor of each module: 1 + the longest chain of imports below it (a cycle is counted once)."
    memo: dict[str, int] = {}
    def floor(m, seen=()):
        if m in memo: return memo[m]
        below = [floor(d, seen + (m,)) for d in arrows[m] if d not in seen]
        memo[m] = 1 + max(below, default=0)
        return memo[m]
    return {m: floor(m) for m in arrows}

def cycles(arrows: dict[str, set[str]]) -> list[list[str]]:
    "Strongly connected groups of more than one module (Tarjan)."
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in arrows[v]:
            if w not in index: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop(); on.discard(w); group.append(w)
                if w == v: break
            if len(group) > 1: out.append(sorted(group))
    for v in arrows:
        if v not in index: visit(v)
    return out

def figures(root: Path) -> dict:
    "The figures of the checkout at root."
    files = sorted(p for p in (root/"neuroseg").glob("*.py") if p.name not in ("_modidx.py", "__init__.py"))
    names, order = {p.stem for p in files}, notebook_order(root)
    modules, arrows, funcs = {}, {}, []
    for p in files:
        text = p.read_text()
        tree = ast.parse(text)
        lines = text.splitlines()
        modules[p.stem] = dict(lines=len(lines), long_lines=sum(len(l) > LIMIT for l in lines))
        arrows[p.stem] = package_imports(tree, names) - {p.stem}
        funcs += functions(tree, p.stem)
    up = sorted(f"{a} -> {b}" for a, bs in arrows.items() for b in bs if order.get(a, 0) < order.get(b, 0))
    fl = floors(arrows)
    lengths = [f["lines"] for f in funcs]
    public = [f for f in funcs if f["public"]]
    longest_mod = max(modules, key=lambda m: modules[m]["lines"])
    longest_fn = max(funcs, key=lambda f: f["lines"])
    total = sum(m["lines"] for m in modules.values())
    return dict(modules=len(modules), lines=total, long_lines=sum(m["long_lines"] for m in modules.values()),
                long_lines_pct=round(100 * sum(m["long_lines"] for m in modules.values()) / total, 1),
                longest_module=f"{longest_mod} ({modules[longest_mod]['lines']} lines)",
                functions=len(funcs), function_median_lines=statistics.median(lengths),
                longest_function=f"{longest_fn['name']} ({longest_fn['lines']} lines)",
                public_functions=len(public), public_with_docstring=sum(f["doc"] for f in public),
                import_arrows=sum(len(b) for b in arrows.values()), floors=max(fl.values()), cycles=cycles(arrows),
                upward_arrows=up, per_module={m: modules[m] | dict(floor=fl[m], imports=sorted(arrows[m])) for m in sorted(modules)})

def checkout(rev: str, into: Path) -> Path:
    "The tracked files of a revision, unpacked into a folder."
    data = subprocess.run(["git", "-C", ROOT, "archive", rev, "neuroseg", "nbs"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as t: t.extractall(into, filter="data")
    return into

ROWS = [("modules", "modules"), ("lines", "lines"), ("long_lines", f"lines over {LIMIT} characters"),
        ("long_lines_pct", "  as % of lines"), ("longest_module", "longest module"), ("functions", "functions and methods"),
        ("function_median_lines", "median function (lines)"), ("longest_function", "longest function"),
        ("public_with_docstring", "public functions with a docstring"), ("import_arrows", "import arrows between modules"),
        ("floors", "floors"), ("cycles", "cycles"), ("upward_arrows", "arrows from an earlier notebook to a later one")]

def table(named: dict[str, dict]) -> str:
    "A markdown table, one column a revision."
    def cell(f, key):
        v = f[key]
        if key == "public_with_docstring": return f"{v} of {f['public_functions']}"
        if isinstance(v, list): return ", ".join(" ".join(c) if isinstance(c, list) else c for c in v) or "none"
        return str(v)
    head = "| | " + " | ".join(named) + " |\n|---|" + "---|" * len(named)
    return head + "\n" + "\n".join(f"| {label} | " + " | ".join(cell(f, k) for f in named.values()) + " |" for k, label in ROWS)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("revs", nargs="*", help="git revisions (default: the working tree)")
    p.add_argument("--json", action="store_true", help="JSON, per module too")
    a = p.parse_args(argv)
    named = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rev in a.revs or [None]:
            named[rev or "working tree"] = figures(checkout(rev, Path(tmp)/str(len(named))) if rev else ROOT)
    print(json.dumps(named, indent=1) if a.json else table(named))

if __name__ == "__main__":
    main()
