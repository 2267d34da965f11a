"""`make docs`: the notebooks executed into an HTML site with their figures, in `_docs/` (git-ignored).

Notebooks are stored without outputs, so the figures that carry the argument (the schedule, overlays, meshes, entropy
maps, contrast tables) are seen only by whoever runs them. This runs every notebook of `nbs/` and `nbs/tutorials/`
with papermill in this Python, as their tests run (cells flagged `slow` or `cuda` left out, `real` kept only when the
real cases are found), and writes each with its code and outputs as an offline HTML page (nbconvert, as the reports
are written: nothing fetched from the network), plus `index.html`, which lists them in the book's order with their
one-line summaries. `--browser yes` opens every page in headless Chromium (tools/browser_check.py) and fails on a
console error; `make check-reports` does that.

    python tools/docs.py [--out _docs] [--only PATTERN ...] [--workers 2] [--browser auto|yes|no]
"""
import argparse, concurrent.futures, html, itertools, json, os, re, shutil, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
import real_data
from neuroseg.render import execute_template, notebook_html

SKIPPED = {"slow", "cuda"}   # flags whose cells the docs leave out, as `make test` does (`make test-all` runs slow ones)

def pages(only:list|None=None) -> list[Path]:
    "The notebooks of the site, in the book's order: nbs/ by number, then the tutorials."
    found = sorted(p for p in (ROOT/"nbs").glob("*.ipynb") if not p.name.startswith(("_", ".")))
    found += sorted((ROOT/"nbs"/"tutorials").glob("*.ipynb"))
    return [p for p in found if not only or any(o in p.name for o in only)]

def _directives(cell:dict) -> list[str]:
    "The nbdev directives of a code cell, from its leading `#|` lines: `#| real` then `#| slow` gives ['real', 'slow']."
    if cell["cell_type"] != "code": return []
    lines = (cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])).lstrip().split("\n")
    return [re.sub(r"\s+", "", l[2:]) for l in itertools.takewhile(lambda l: l.startswith("#|"), lines)]

def _runs(cell:dict, skipped:set) -> bool:
    "Whether nbdev_test would run the cell: no directive among `skipped`, no `eval: false`, not nbdev's own export call."
    directives = _directives(cell)
    return not (skipped & set(directives) or "eval:false" in directives or "nbdev.nbdev_export()" in "".join(cell["source"]))

_REMOTE_IMAGE = re.compile(r"!\[([^\]]*)\]\(https?://[^)]*\)")   # e.g. the Colab badge: its text stays, no request

def runnable_copy(nb_path:Path, out:Path, skipped:set) -> Path:
    "A copy of the notebook without the cells flagged `skipped`, nor nbdev's own export call; `#| hide` cells stay (they run) but are dropped from the page later."
    nb = json.loads(nb_path.read_text())
    nb["cells"] = [c for c in nb["cells"] if _runs(c, skipped)]
    for c in nb["cells"]:
        if c["cell_type"] == "code": c["outputs"], c["execution_count"] = [], None
    out.write_text(json.dumps(nb))
    return out

def shown_copy(executed:Path) -> Path:
    "The executed notebook as the page shows it: `#| hide` cells dropped, nbdev's directive lines taken out of the code."
    nb = json.loads(executed.read_text())
    nb["cells"] = [c for c in nb["cells"] if "hide" not in _directives(c)]
    for c in nb["cells"]:
        if c["cell_type"] == "markdown": c["source"] = _REMOTE_IMAGE.sub(r"\1", "".join(c["source"]))
        if c["cell_type"] == "code":
            lines = "".join(c["source"]).split("\n")
            c["source"] = "\n".join(l for l in lines if not re.match(r"#\|", l))
    executed.write_text(json.dumps(nb))
    return executed

def build_page(nb_path:Path, out_dir:Path, skipped:set) -> tuple[str, float, str]:
    "Execute one notebook in a scratch folder beside nbs/ and write its page; (name, seconds, error or '')."
    tick = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=f"neuroseg-docs-{nb_path.stem}-"))
    # A library notebook's kernel runs in the notebook's folder, as nbdev_test runs it: relative paths resolve from there.
    # A tutorial runs where a user would, in an empty folder (as tools/check_tutorials.py runs it): the runs it writes
    # go with the scratch folder, and the next build finds no earlier run of its own in nbs/tutorials/.
    cwd = work if nb_path.parent.name == "tutorials" else nb_path.parent
    try:
        executed = work/nb_path.name
        execute_template(runnable_copy(nb_path, work/f"in-{nb_path.name}", skipped), executed, {}, cwd=cwd)
        page = out_dir/nb_path.with_suffix(".html").name
        tmp = page.with_name(f".{page.name}.tmp")
        tmp.write_text(notebook_html(shown_copy(executed), code=True))
        os.replace(tmp, page)
        return nb_path.name, time.perf_counter() - tick, ""
    except Exception as e:
        return nb_path.name, time.perf_counter() - tick, f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
    finally: shutil.rmtree(work, ignore_errors=True)

def summary(nb_path:Path) -> tuple[str, str]:
    "A notebook's title (its first heading) and one-line summary (its first `> ` line)."
    cells = json.loads(nb_path.read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    title = next((l.lstrip("# ").strip() for l in text.splitlines() if l.startswith("# ")), nb_path.stem)
    line = next((l[2:].strip() for l in text.splitlines() if l.startswith("> ") and "Research use only" not in l), "")
    return title, line

def write_index(books:list[Path], out_dir:Path, built:set):
    "index.html: every page in order, with its title and summary."
    rows = []
    for p in books:
        title, line = summary(p)
        name = p.with_suffix(".html").name
        link = f'<a href="{html.escape(name)}">{html.escape(p.stem)}</a>' if name in built else html.escape(p.stem) + " (not built)"
        rows.append(f"<tr><td>{link}</td><td><b>{html.escape(title)}</b><br>{html.escape(line)}</td></tr>")
    (out_dir/"index.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>NeuroSeg-3D notebooks</title>"
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}td{padding:.4em;vertical-align:top;border-bottom:1px solid #ddd}</style>"
        "</head><body><h1>NeuroSeg-3D: the notebooks, executed</h1><p>Built by <code>make docs</code> from the notebooks in "
        "<code>nbs/</code>; each page shows the code and what it printed and drew. <b>Research use only</b>: not a medical device.</p>"
        f"<table>{''.join(rows)}</table></body></html>")

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT/"_docs"))
    ap.add_argument("--only", nargs="*", help="build only the notebooks whose name holds one of these")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--browser", choices=["auto", "yes", "no"], default="auto", help="open the pages in headless Chromium")
    args = ap.parse_args()
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    skipped = set(SKIPPED)
    if real_data.find_real_data(fetch=False) is None: skipped.add("real")
    books = pages(args.only)
    with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
        results = list(pool.map(lambda p: build_page(p, out, skipped), books))
    for name, seconds, error in results: print(f"{'ok  ' if not error else 'FAIL'} {name:<32} {seconds:6.1f} s  {error}")
    built = {n.replace(".ipynb", ".html") for n, _, e in results if not e}
    write_index(pages(), out, {p.name for p in out.glob("*.html")} | built)
    failed = [n for n, _, e in results if e]
    if args.browser != "no" and (args.browser == "yes" or shutil.which("chromium")):
        pages_html = [str(out/"index.html"), *(str(out/n) for n in sorted(built))]
        if subprocess.run([sys.executable, str(ROOT/"tools"/"browser_check.py"), *pages_html]).returncode: failed.append("browser check")
    print(f"docs: {len(built)} pages in {out}/index.html" + (f"; failed: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)

if __name__ == "__main__": main()
