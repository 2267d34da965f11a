"""Keep the exported code of the notebooks within 120 characters a line, with a formatter's help (#26 item 7).

    python tools/line_limit.py --check                 # count the exported lines over the limit, per notebook
    python tools/line_limit.py nbs/07_infer.ipynb      # bring a notebook's exported cells under it (then `make sync`)

Needs ruff (`pip install ruff`). Only `#| export` cells with a line over the limit change, each in the least way that
reads well: a trailing comment that alone overflows moves onto its own line above (never a parameter's comment, which
nbdev reads as its documentation); ruff's range formatting wraps only the statements still too long; a long string
argument becomes adjacent literals (the same value); a long one-line docstring wraps; ruff's one-item-per-line lists are
packed back into filled lines. Every changed cell is parsed again and must have the AST it had, docstring whitespace
aside, or the notebook is left as it was. What is left over the limit is what does not split well (HTML and JavaScript
template lines, parameter comments, help texts).
"""

from __future__ import annotations
import argparse, ast, io, json, re, shutil, subprocess, sys, textwrap, tokenize
from pathlib import Path
LIMIT = 120
RUFF = shutil.which("ruff") or str(Path(sys.executable).parent/"ruff")

def hoist_comments(src):
    "Move trailing comments of too-long lines, outside brackets, onto their own line above."
    lines = src.split("\n")
    try: toks = list(tokenize.generate_tokens(io.StringIO(src).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError): return src
    depth, moves, prev = 0, {}, None
    for t in toks:
        after_open = prev is not None and prev.type == tokenize.OP and prev.string in "([{"
        if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT): prev = t
        if t.type == tokenize.OP and t.string in "([{": depth += 1
        elif t.type == tokenize.OP and t.string in ")]}": depth -= 1
        elif t.type == tokenize.COMMENT and (depth == 0 or after_open):
            row, col = t.start
            line = lines[row - 1]
            code = line[:col].rstrip()
            if len(line) > LIMIT and code.strip() and not t.string.startswith("#|"):
                moves[row] = (code, t.string)
    for row in sorted(moves, reverse=True):
        code, comment = moves[row]
        indent = code[:len(code) - len(code.lstrip())]
        # a block opener (`if x: y  # c`) keeps the comment's indentation at the statement's
        lines[row - 1:row] = [indent + comment, code]
    return "\n".join(lines)

def ruff_lines(src, rows):
    "ruff's range formatting of the statements on these 1-based lines, bottom up, so line numbers above stay valid."
    for ln in sorted(rows, reverse=True):
        text_lines = src.split("\n")
        if ln > len(text_lines) or len(text_lines[ln - 1]) <= LIMIT: continue
        span = f"{ln}:1-{ln}:{len(text_lines[ln - 1]) + 1}"
        cmd = [RUFF, "format", "--line-length", str(LIMIT), "--range", span, "--stdin-filename", "cell.py", "-"]
        r = subprocess.run(cmd, input=src + "\n", capture_output=True, text=True)
        if r.returncode == 0: src = r.stdout[:-1] if r.stdout.endswith("\n") else r.stdout
        else: print("ruff failed:", r.stderr[:300], file=sys.stderr)
    return src

def ruff_wrap(src):
    "Comments hoisted, then ruff on what is still too long."
    src = hoist_comments(src)
    long = [i + 1 for i, l in enumerate(src.split("\n")) if len(l) > LIMIT]
    return ruff_lines(src, long) if long else src

def wrap_docstrings(src):
    "One-line docstrings over LIMIT become triple-quoted ones wrapped at word boundaries (same words, same escapes)."
    try: tree = ast.parse(src)
    except SyntaxError: return src
    lines = src.split("\n"); edits = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or not node.body: continue
        first = node.body[0]
        if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)): continue
        if not isinstance(first.value.value, str): continue
        if first.lineno != first.end_lineno: continue
        line = lines[first.lineno - 1]
        if len(line) <= LIMIT: continue
        indent = line[:len(line) - len(line.lstrip())]
        m = re.fullmatch(r'(\s*)"((?:[^"\\]|\\.)*)"(\s*)', line)
        if not m or m.group(3): continue
        body = m.group(2)
        if '"' in body.replace('\\"', ""): continue
        pieces = textwrap.wrap(body, width=LIMIT - len(indent) - 3, break_long_words=False, break_on_hyphens=False)
        if any(p.endswith("\\") for p in pieces): continue
        new = [indent + '"""' + pieces[0]] + [indent + p for p in pieces[1:]]
        new[-1] += '"""'
        if new[-1].rstrip().endswith('""""'): continue
        edits.append((first.lineno, new))
    for row, new in sorted(edits, reverse=True): lines[row - 1:row] = new
    return "\n".join(lines)

def split_strings(src):
    "A string literal alone on a too-long line inside brackets, split at a space into adjacent literals (same value)."
    for _ in range(20):
        lines = src.split("\n")
        try: toks = list(tokenize.generate_tokens(io.StringIO(src).readline))
        except (tokenize.TokenError, SyntaxError, IndentationError): return src
        depth, done = 0, False
        for t in toks:
            if t.type == tokenize.OP and t.string in "([{": depth += 1
            elif t.type == tokenize.OP and t.string in ")]}": depth -= 1
            elif t.type == tokenize.STRING and depth > 0 and t.start[0] == t.end[0]:
                row, col = t.start; line = lines[row - 1]
                if len(line) <= LIMIT or line[:col].strip(): continue
                m = re.fullmatch(r'([rRfFbB]*)(["\'])(.*)\2', t.string)
                if not m or m.group(2) * 3 in t.string: continue
                prefix, q, body = m.groups()
                budget = LIMIT - col - len(prefix) - 2
                cut, braces = None, 0
                for i, ch in enumerate(body):
                    if "f" in prefix.lower():
                        if ch == "{": braces += 1
                        elif ch == "}": braces -= 1
                    if i >= budget: break
                    if ch == " " and braces == 0 and i > 0 and body[i - 1] != "\\": cut = i + 1
                if not cut or cut >= len(body): continue
                first, second = body[:cut], body[cut:]
                plain = prefix.replace("f", "").replace("F", "")
                keep = lambda part: "{" in part or "}" in part or "\\" in part or "r" in prefix.lower()
                p1, p2 = (prefix if keep(first) else plain), (prefix if keep(second) else plain)
                rest = line[t.end[1]:]
                lines[row - 1:row] = [line[:col] + p1 + q + first + q, " " * col + p2 + q + second + q + rest]
                src, done = "\n".join(lines), True
                break
        if not done: return src
    return src



def pack_lists(src, original):
    """Runs of 3+ new lines (ruff's one-item-per-line lists) at one indentation, each a complete item ending in a comma
    and without a comment, packed into lines of up to LIMIT."""
    old = {l.strip() for l in original.split("\n")}
    lines = src.split("\n")
    try: toks = list(tokenize.generate_tokens(io.StringIO(src).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError): return src
    depth_at, has_comment, depth, opens = {}, set(), 0, {}
    for t in toks:
        r = t.start[0]
        depth_at.setdefault(r, depth)
        if t.type == tokenize.OP and t.string in "([{": depth += 1
        elif t.type == tokenize.OP and t.string in ")]}": depth -= 1
        elif t.type == tokenize.COMMENT: has_comment.add(r)
        if t.type == tokenize.STRING and t.start[0] != t.end[0]: has_comment.update(range(t.start[0], t.end[0] + 1))
        opens[t.end[0]] = depth   # depth after the line's last token
    def item(i):   # 0-based line index
        r = i + 1; l = lines[i]; s = l.strip()
        return bool(s) and s.endswith(",") and r not in has_comment and s not in old and depth_at.get(r, -1) > 0 \
            and opens.get(r) == depth_at.get(r) and not s.startswith("#")
    out, i = [], 0
    while i < len(lines):
        if item(i):
            ind = lines[i][:len(lines[i]) - len(lines[i].lstrip())]
            j = i
            while j < len(lines) and item(j) and lines[j].startswith(ind) and not lines[j][len(ind)].isspace(): j += 1
            if j - i >= 3:
                cur = ind
                for k in range(i, j):
                    piece = lines[k].strip()
                    if cur.strip() and len(cur) + 1 + len(piece) > LIMIT: out.append(cur); cur = ind + piece
                    else: cur = cur + (" " if cur.strip() else "") + piece
                out.append(cur); i = j; continue
        out.append(lines[i]); i += 1
    return "\n".join(out)




IMPORT_OPEN = re.compile(r"(\s*)from [\w.]+ import \($")

def compact_imports(src):
    """`from x import (` followed by one name list and a lone `)`: the names back on the opening line, continued under
    the parenthesis, as the notebooks write them. (nbdev makes a package import relative by slicing the statement's
    first line up to its last column, so a lone closing parenthesis would leave it absolute.)"""
    lines, out, i = src.split("\n"), [], 0
    while i < len(lines):
        m = IMPORT_OPEN.fullmatch(lines[i])
        j = i + 1
        while m and j < len(lines) and lines[j].strip() not in (")", "") and "#" not in lines[j]: j += 1
        if not (m and j < len(lines) and lines[j].strip() == ")" and j > i + 1):
            out.append(lines[i]); i += 1; continue
        names = [n.strip() for l in lines[i + 1:j] for n in l.split(",") if n.strip()]
        head, pad = lines[i], " " * len(lines[i])
        cur = head
        for k, name in enumerate(names):
            piece = name + (")" if k == len(names) - 1 else ",")
            if cur not in (head, pad) and len(cur) + 1 + len(piece) > LIMIT: out.append(cur); cur = pad + piece
            else: cur = cur + ("" if cur in (head, pad) else " ") + piece
        out.append(cur); i = j + 1
    return "\n".join(out)

def same_code(a:str, b:str) -> bool:
    "True when two cell sources parse to the same AST, docstring whitespace aside."
    def norm(src):
        tree = ast.parse("\n".join(l for l in src.split("\n") if not l.lstrip().startswith(("%", "!"))))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)) and node.body:
                f = node.body[0]
                if isinstance(f, ast.Expr) and isinstance(f.value, ast.Constant) and isinstance(f.value.value, str):
                    f.value.value = " ".join(f.value.value.split())
        return ast.dump(tree)
    try: return norm(a) == norm(b)
    except SyntaxError: return False

def fix(src:str) -> str:
    "One exported cell under the limit where it reads well; the cell unchanged if its code would change."
    new = compact_imports(pack_lists(split_strings(ruff_wrap(wrap_docstrings(src))), src))
    return new if same_code(src, new) else src

def long_lines(src:str) -> int: return sum(len(l) > LIMIT for l in src.split("\n"))

def run(paths:list, check:bool=False) -> int:
    "Wrap (or with `check` count) the exported cells of `paths`; the number of lines over the limit left."
    left = 0
    for p in map(Path, paths):
        nb = json.loads(p.read_text()); changed = False
        for c in nb["cells"]:
            src = "".join(c["source"])
            if c["cell_type"] != "code" or not src.startswith("#| export") or not long_lines(src): continue
            new = src if check else fix(src)
            if new != src: c["source"] = new.splitlines(keepends=True); changed = True
            left += long_lines(new)
            if check: print(f"{p.name}: {long_lines(src)} line(s) over {LIMIT}")
        if changed: p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return left

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", help="default: every numbered notebook in nbs/")
    ap.add_argument("--check", action="store_true", help="only count the lines over the limit")
    a = ap.parse_args(argv)
    paths = a.notebooks or sorted(str(p) for p in (Path(__file__).resolve().parent.parent/"nbs").glob("[0-9]*.ipynb"))
    print(f"{run(paths, a.check)} exported line(s) over {LIMIT} characters")

if __name__ == "__main__":
    main()
