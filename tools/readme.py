"""Generate README.md from nbs/index.ipynb (nbdev's own `nbdev_readme` needs Quarto, which pip cannot install).

    python tools/readme.py           # write README.md
    python tools/readme.py --check   # exit 1 if README.md is out of date
"""
import sys, re
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parent.parent

def render_readme(nb_path=ROOT/"nbs"/"index.ipynb") -> str:
    "Markdown cells as they are; code cells (without nbdev directives) as fenced Python blocks."
    nb = nbformat.read(nb_path, as_version=4)
    parts = ["<!-- Generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file. -->"]
    for cell in nb.cells:
        src = cell.source.strip()
        if cell.cell_type == "markdown": parts.append(src)
        elif cell.cell_type == "code":
            if re.search(r"^#\|\s*(hide|exporti?)\b", src, re.M): continue
            code = "\n".join(l for l in src.splitlines() if not l.startswith("#|")).strip()
            if code: parts.append(f"```python\n{code}\n```")
    return "\n\n".join(parts) + "\n"

if __name__ == "__main__":
    text, target = render_readme(), ROOT/"README.md"
    if "--check" in sys.argv:
        if not target.is_file() or target.read_text() != text:
            sys.exit("README.md is out of date with nbs/index.ipynb: run `make readme`")
    else:
        target.write_text(text)
