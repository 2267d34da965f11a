"""Generate README.md from nbs/index.ipynb (nbdev's own `nbdev_readme` needs Quarto, which pip cannot install), after
writing the project's addresses from settings.ini into the notebooks.

settings.ini is the one source of the repository's address (`git_url`, `user`, `repo`, `branch`) and of the
distribution's name (`lib_name`): every install line, Colab badge and git URL in nbs/index.ipynb and the tutorials is
rewritten from it here, so a new address is one edit there and `make sync`. A line that would install the unrelated
PyPI project `neuroseg` (`pip install neuroseg`, `"neuroseg[export]"`) stops the generation.

    python tools/readme.py           # write the addresses into the notebooks, then README.md
    python tools/readme.py --check   # exit 1 if README.md or a notebook's address is out of date
"""
import configparser, sys, re
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parent.parent
ADDRESSED = [ROOT/"nbs"/"index.ipynb", *sorted((ROOT/"nbs"/"tutorials").glob("*.ipynb"))]

def settings() -> configparser.SectionProxy:
    cfg = configparser.ConfigParser(delimiters=["="]); cfg.read(ROOT/"settings.ini")
    return cfg["DEFAULT"]

def with_addresses(text:str, cfg=None) -> str:
    "`text` with every address of this project's repository (GitHub, Colab) taken from settings.ini."
    cfg = cfg or settings()
    owner, repo = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)/?", cfg["git_url"]).groups()
    ours = rf"(?:{re.escape(owner)}/[\w.-]+|[\w.-]+/{re.escape(repo)})"   # a change of owner or of name, one at a time
    text = re.sub(rf"https://github\.com/{ours}(?![\w.-])", cfg["git_url"].rstrip("/"), text)
    return re.sub(rf"colab\.research\.google\.com/github/{ours}/blob/[\w.-]+/", f"colab.research.google.com/github/{owner}/{repo}/blob/{cfg['branch']}/", text)

WRONG_PROJECT = re.compile(r"pip install (?:-\S+ )*[\"']?neuroseg(?:\[|[\"']|\s|$)")

def check_install_lines(text:str, source:str):
    "Stop at a line that would install the unrelated PyPI project `neuroseg` instead of this distribution."
    for line in text.splitlines():
        if WRONG_PROJECT.search(line):
            sys.exit(f"{source}: installs the unrelated PyPI project `neuroseg` (this one is `{settings()['lib_name']}`): {line.strip()[:120]}")

def sync_addresses(check:bool=False) -> list:
    "Rewrite the addresses in the notebooks from settings.ini; the notebooks that changed (or would, with `check`)."
    changed = []
    for nb in ADDRESSED:
        text = nb.read_text(encoding="utf-8")
        check_install_lines(text, nb.relative_to(ROOT))
        if (new := with_addresses(text)) != text:
            changed.append(nb)
            if not check: nb.write_text(new, encoding="utf-8")
    return changed

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
    check = "--check" in sys.argv
    if (stale := sync_addresses(check)) and check:
        sys.exit(f"{', '.join(str(p.relative_to(ROOT)) for p in stale)}: addresses differ from settings.ini: run `make sync`")
    text, target = render_readme(), ROOT/"README.md"
    if check:
        if not target.is_file() or target.read_text() != text:
            sys.exit("README.md is out of date with nbs/index.ipynb: run `make readme`")
    else:
        target.write_text(text)
