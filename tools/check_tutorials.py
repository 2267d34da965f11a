"""Run the tutorial notebooks in nbs/tutorials/ top to bottom with papermill on tiny parameters, and check what they show.

Each notebook runs in a temporary folder with the project's Jupyter kernel `neuroseg` (else the running interpreter's
own `python3` kernel). It must finish without an error, a traceback on stderr, or a cell that ran into the execution
timeout, and hold the outputs listed in EXPECTED: each named call's figure, table, 3D view or widget, and the views
that the case browser's callbacks put into its Output widgets. `make test` runs this (tools/run_tests.py).

    python tools/check_tutorials.py [--out DIR] [--only NAME ...]
"""
import argparse, shutil, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT/"nbs"/"tutorials"
CELL_TIMEOUT_S = 300  # a cell that waits longer fails the check instead of stalling `make test`
PNG, HTML, PLOTLY, WIDGET = "image/png", "text/html", "application/vnd.plotly.v1+json", "application/vnd.jupyter.widget-view+json"

TINY = dict(n_cases=8, synth_kind="ellipsoid", shape=[32, 32, 24], epochs=4, lr=0.03, roi=16, channels=[8, 16, 32], device="cpu")
PARAMETERS = {  # pinned, so that a change of a notebook's defaults cannot slow the tests down
    "colab_quickstart.ipynb": dict(TINY, dataset="synthetic", test_cases=2, tracking="disabled", use_real=False),
    # the lab with the shipped model on tiny synthetic cases: `-p checkpoint pretrained:brats` runs, and no training is needed
    "lab.ipynb": dict(TINY, eda_cases=8, checkpoint="pretrained:brats", use_real=False),
}
EXPECTED = {  # notebook -> (text of the code cell, mime type one of its outputs must have)
    "colab_quickstart.ipynb": [("environment_info()", HTML), ("preview_dataset(", PNG), ("shipped = predict(", PNG), ("plot_training_curves(", PNG),
                               ("predict_to_files(", HTML), ("format_summary(", "text/plain"), ("plot_multiplanar(", PNG),
                               ("plot_errors(", PNG), ("tumour_mesh_figure(", PLOTLY), ("entropy_figure(", PNG)],
    "lab.ipynb": [("headers = [header_row(", HTML), ("plot_histograms(histograms)", PNG), ("plot_volumes(volumes)", PNG),
                  ("browser.ui", WIDGET), ("display(browser.planes_figure()", PNG), ("display(browser.planes_figure()", HTML),
                  ("viewer_frame(", HTML), ("entropy_figure(", PNG), ("band_widths_mm(", HTML),
                  ("plot_errors(", PNG), ("table_html(outcomes)", HTML)],
}
WIDGET_OUTPUTS = {"lab.ipynb": [PNG, HTML, PLOTLY]}  # what the Output widgets of the case browser must hold

def kernel_name() -> str:
    "The project's kernel when it is registered (`make install`), else the running interpreter's own."
    from jupyter_client.kernelspec import KernelSpecManager
    return "neuroseg" if "neuroseg" in KernelSpecManager().find_kernel_specs() else "python3"

def execute(notebook:Path, out:Path, parameters:dict, kernel:str):
    "Run `notebook` with papermill in `out`'s folder, writing the executed notebook to `out`."
    import papermill as pm
    from neuroseg.render import kernel_settings
    pm.execute_notebook(str(notebook), str(out), parameters=parameters, kernel_name=kernel, cwd=str(out.parent),
                        progress_bar=False, log_output=False, execution_timeout=CELL_TIMEOUT_S, config=kernel_settings(),
                        extra_arguments=["--IPKernelApp.log_level=CRITICAL"])

def output_mimes(outputs:list) -> set:
    "The kinds of output in `outputs`: mime types of display data, `text/plain` for stdout."
    mimes = set()
    for o in outputs:
        mimes |= set(o.get("data", {}))
        if o.get("output_type") == "stream" and o.get("name") == "stdout": mimes.add("text/plain")
    return mimes

def cell_problems(nb) -> list:
    "Errors, tracebacks on stderr and timed-out cells of an executed notebook."
    problems = []
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        first = cell.source.splitlines()[0][:60] if cell.source else ""
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error": problems.append(f"code cell {i} ({first}): {o.get('ename')}: {o.get('evalue')}")
            elif o.get("name") == "stderr" and "Traceback" in o.get("text", ""): problems.append(f"code cell {i} ({first}): traceback on stderr")
        if (cell.get("metadata", {}).get("papermill", {}).get("duration") or 0) >= CELL_TIMEOUT_S:
            problems.append(f"code cell {i} ({first}): ran into the {CELL_TIMEOUT_S} s timeout")
    return problems

def expected_problems(nb, name:str) -> list:
    "Expected outputs that the executed notebook lacks."
    problems = []
    for text, mime in EXPECTED.get(name, []):
        cells = [c for c in nb.cells if c.cell_type == "code" and text in c.source]
        if not cells: problems.append(f"no code cell contains {text!r} (update EXPECTED in tools/check_tutorials.py)")
        elif mime not in output_mimes(cells[0].get("outputs", [])): problems.append(f"the cell with {text!r} shows no {mime}")
    return problems

def widget_problems(nb, name:str) -> list:
    "Views missing from the Output widgets in the saved widget state."
    wanted = WIDGET_OUTPUTS.get(name, [])
    if not wanted: return []
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    held = set().union(*[output_mimes(m["state"].get("outputs", [])) for m in state.values() if m.get("model_name") == "OutputModel"])
    return [f"no Output widget holds {mime}" for mime in wanted if mime not in held]

def check(notebook:Path, work:Path, kernel:str) -> list:
    "Run one tutorial in its own folder under `work` and return its problems."
    import nbformat, papermill as pm
    folder = work/notebook.stem
    folder.mkdir(parents=True)
    out = folder/notebook.name
    try: execute(notebook, out, PARAMETERS.get(notebook.name, {}), kernel)
    except pm.PapermillExecutionError as e:
        hint = "; install it into the kernel's environment" if e.ename == "ModuleNotFoundError" else ""
        return [f"cell {e.exec_count}: {e.ename}: {e.evalue}{hint}"]
    except Exception as e: return [f"{type(e).__name__}: {e}"]  # a cell over the timeout, a kernel that died
    nb = nbformat.read(out, as_version=4)
    return cell_problems(nb) + expected_problems(nb, notebook.name) + widget_problems(nb, notebook.name)

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="keep the executed notebooks and their files here (default: a temporary folder, removed)")
    ap.add_argument("--only", nargs="+", default=None, help="only the tutorials whose file name starts with one of these")
    args = ap.parse_args(argv)
    notebooks = sorted(p for p in TUTORIALS.glob("*.ipynb") if not args.only or any(p.name.startswith(o) for o in args.only))
    if not notebooks: raise SystemExit(f"check_tutorials: no tutorial notebooks in {TUTORIALS}")
    if args.out and args.out.exists() and any(args.out.iterdir()): raise SystemExit(f"check_tutorials: {args.out} is not empty")
    work, kernel, failed, start = args.out or Path(tempfile.mkdtemp(prefix="neuroseg-check-tutorials-")), kernel_name(), 0, time.time()
    print(f"check_tutorials: {len(notebooks)} notebooks with kernel {kernel!r} in {work}")
    try:
        for nb in notebooks:
            tick = time.time()
            problems = check(nb, work, kernel)
            print(f"  {'ok  ' if not problems else 'FAIL'} {nb.name:28s} {time.time() - tick:5.1f} s")
            for p in problems: print(f"       {p}")
            failed += bool(problems)
        print(f"check_tutorials: {'ok' if not failed else f'{failed} FAILED'} in {time.time() - start:.0f} s")
        return 1 if failed else 0
    finally:
        if not args.out: shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    sys.exit(main())
