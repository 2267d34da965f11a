"""Open report pages in headless Chromium from file:// with no network: no console error, no request leaving the
page's own file, and (with --require-3d) a plotly 3D plot, or a NiiVue viewer's segmentation (08a_viewer), that
draws something.

Chromium is driven through the DevTools protocol (CDP) over its debugging websocket, with tornado's websocket client
(already installed with Jupyter), so neither chromedriver nor selenium is needed. WebGL runs on SwiftShader, the CPU
renderer, so the check works without a GPU.

    python tools/browser_check.py PAGE.html [PAGE.html ...] [--require-3d] [--screenshots DIR] [--full-page]

Exit code 0 when every page passes, 1 otherwise; one line per page.
"""
import argparse, asyncio, base64, io, json, shutil, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--mute-audio",
                  "--host-resolver-rules=MAP * ~NOTFOUND",          # no name resolves: nothing can leave the machine
                  "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",   # WebGL on the CPU
                  "--window-size=1280,900", "--remote-debugging-port=0", "--remote-allow-origins=*"]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
PLOT_CANVAS = ".js-plotly-plot .gl-container canvas"   # plotly draws 3D scenes into a WebGL canvas there

def find_chromium() -> str:
    "Path of the Chromium executable (Debian's `chromium`, or Chrome)."
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name): return path
    raise SystemExit("browser_check: no chromium found; `make check-reports` installs Debian's chromium")

class Chromium:
    "A headless Chromium with a new, empty profile; `port` is its DevTools port."
    def __init__(self, executable:str|None=None):
        self.profile = tempfile.mkdtemp(prefix="neuroseg-chromium-")
        args = [executable or find_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.port = self._wait_for_port()

    def _wait_for_port(self, timeout_s:float=30) -> int:
        "The DevTools port Chromium writes into its profile once it listens."
        port_file, start = Path(self.profile)/"DevToolsActivePort", time.time()
        while time.time() - start < timeout_s:
            if self.proc.poll() is not None: raise RuntimeError(f"chromium exited with code {self.proc.returncode}")
            if port_file.is_file() and port_file.read_text().strip(): return int(port_file.read_text().split()[0])
            time.sleep(0.05)
        raise RuntimeError("chromium did not open its DevTools port within 30 s")

    def new_page_ws(self) -> str:
        "The DevTools websocket URL of a new tab."
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as r: return json.load(r)["webSocketDebuggerUrl"]

    def close(self):
        self.proc.terminate()
        try: self.proc.wait(10)
        except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self): return self
    def __exit__(self, *exc): self.close()

class Session:
    "One tab: send DevTools commands, keep every event."
    def __init__(self, ws): self.ws, self.next_id, self.events = ws, 0, []

    @classmethod
    async def open(cls, url:str):
        from tornado.websocket import websocket_connect
        return cls(await websocket_connect(url, max_message_size=512 * 2**20))

    async def _read(self) -> dict:
        message = await self.ws.read_message()
        if message is None: raise RuntimeError("the DevTools connection closed")
        return json.loads(message)

    async def send(self, method:str, **params) -> dict:
        "Send a command and return its result; events that arrive meanwhile are kept."
        self.next_id += 1
        self.ws.write_message(json.dumps(dict(id=self.next_id, method=method, params=params)))
        while (message := await self._read()).get("id") != self.next_id: self.events.append(message)
        if "error" in message: raise RuntimeError(f"{method}: {message['error']}")
        return message["result"]

    async def wait_for(self, method:str, timeout_s:float=60):
        "Wait for an event."
        async def _wait():
            while not any(e.get("method") == method for e in self.events): self.events.append(await self._read())
        await asyncio.wait_for(_wait(), timeout_s)

    async def evaluate(self, expression:str):
        "The value of a JavaScript expression (promises awaited)."
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result: raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

def page_problems(events:list) -> list:
    "Console errors, uncaught exceptions, failed loads and requests for anything but local files, from CDP events."
    problems = []
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]; problems.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
        elif method == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
            problems.append("console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
        elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
            problems.append(f"log: {p['entry']['text']} ({p['entry'].get('url', '')})")
        elif method == "Network.requestWillBeSent" and not p["request"]["url"].startswith(LOCAL_SCHEMES):
            problems.append(f"network request: {p['request']['url'][:120]}")
        elif method == "Network.loadingFailed":
            problems.append(f"load failed: {p.get('errorText')}")
    return problems

def coloured_fraction(png:bytes) -> float:
    "Share of clearly coloured pixels (saturation > 0.3): the meshes, not the white background, grey grid or text."
    import numpy as np
    from PIL import Image
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)
    high, low = rgb.max(-1), rgb.min(-1)
    return float(((high - low) / np.maximum(high, 1) > 0.3).mean())

async def _plot_screenshot(s:Session, timeout_s:float=30) -> bytes:
    "Scroll the first 3D plot into view once its WebGL canvas exists; a PNG of the plot."
    start = time.time()
    while not await s.evaluate(f"document.querySelectorAll('{PLOT_CANVAS}').length"):
        if time.time() - start > timeout_s: raise RuntimeError(f"no 3D plot ({PLOT_CANVAS}) after {timeout_s} s")
        await asyncio.sleep(0.1)
    rect = await s.evaluate("""(async () => {
        const plot = document.querySelector('.js-plotly-plot');
        plot.scrollIntoView({block: 'center'});
        for (let i = 0; i < 10; i++) await new Promise(r => requestAnimationFrame(r));
        const b = plot.getBoundingClientRect();
        return {x: b.left + window.scrollX, y: b.top + window.scrollY, width: b.width, height: b.height};
    })()""")
    shot = await s.send("Page.captureScreenshot", format="png", clip=dict(rect, scale=1))
    return base64.b64decode(shot["data"])

async def _viewer_ready(s:Session, timeout_s:float=60) -> str:
    "Wait for a NiiVue viewer page (08a_viewer) to say its volumes are loaded: its body's data-ready turns yes (or error)."
    start = time.time()
    while (state := await s.evaluate("document.body.dataset.ready || ''")) not in ("yes", "error"):
        if time.time() - start > timeout_s: return f"viewer not ready after {timeout_s} s"
        await asyncio.sleep(0.2)
    for _ in range(10): await s.evaluate("new Promise(r => requestAnimationFrame(r))")   # the first frames drawn
    return "" if state == "yes" else "viewer: " + await s.evaluate("document.getElementById('status').textContent")

async def check_page(chromium:Chromium, # a running browser
                     page:Path, # HTML file
                     require_3d:bool=False, # fail unless a plotly 3D plot, or a NiiVue viewer's overlay, draws something
                     screenshot_dir:Path|None=None, # where to write <page>.png (the plot, or the viewport)
                     full_page:bool=False, # also write <page>-full.png of the whole page
                    ) -> dict:
    "Load `page` from file:// and report its problems, load time and the 3D plot's coloured share."
    s, start = await Session.open(chromium.new_page_ws()), time.time()
    try:
        for domain in ("Runtime", "Log", "Page", "Network"): await s.send(f"{domain}.enable")
        await s.send("Page.navigate", url=page.resolve().as_uri())
        await s.wait_for("Page.loadEventFired")
        result = dict(page=str(page), load_s=time.time() - start)
        has_plot = await s.evaluate("document.querySelectorAll('.js-plotly-plot').length") > 0
        viewer = await s.evaluate("document.body.dataset.ready !== undefined")
        if viewer and (problem := await _viewer_ready(s)): result.setdefault("viewer", []).append(problem)
        png = await _plot_screenshot(s) if has_plot else base64.b64decode((await s.send("Page.captureScreenshot", format="png"))["data"])
        await asyncio.sleep(0.3)   # late console messages
        await s.evaluate("1")
        result["coloured"] = coloured_fraction(png) if has_plot or viewer or require_3d else None
        result["problems"] = page_problems(s.events) + result.pop("viewer", [])
        what = "viewer" if viewer else "3D plot"
        if require_3d and result["coloured"] < 0.005: result["problems"].append(f"{what} looks blank ({result['coloured']:.1%} coloured pixels)")
        if screenshot_dir:
            screenshot_dir.mkdir(parents=True, exist_ok=True)
            result["screenshot"] = str(screenshot_dir/f"{page.stem}.png")
            Path(result["screenshot"]).write_bytes(png)
            if full_page:
                full = await s.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
                (screenshot_dir/f"{page.stem}-full.png").write_bytes(base64.b64decode(full["data"]))
        result["seconds"] = time.time() - start
        return result
    finally: s.ws.close()

async def check_pages(pages:list, require_3d:bool=False, screenshot_dir:Path|None=None, full_page:bool=False) -> list:
    "Check each page in one browser."
    with Chromium() as chromium:
        return [await check_page(chromium, Path(p), require_3d, screenshot_dir, full_page) for p in pages]

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pages", nargs="+", help="HTML files")
    ap.add_argument("--require-3d", action="store_true", help="fail unless each page draws a non-blank plotly 3D plot or NiiVue overlay")
    ap.add_argument("--screenshots", type=Path, default=None, help="folder for the screenshots (<page>.png)")
    ap.add_argument("--full-page", action="store_true", help="also a screenshot of each whole page (<page>-full.png)")
    args = ap.parse_args(argv)
    start = time.time()
    results = asyncio.run(check_pages(args.pages, args.require_3d, args.screenshots, args.full_page))
    for r in results:
        plot = f", 3D plot {r['coloured']:.1%} coloured pixels" if r["coloured"] is not None else ""
        shot = f", screenshot {r['screenshot']}" if "screenshot" in r else ""
        print(f"{'ok  ' if not r['problems'] else 'FAIL'} {r['page']}: loaded in {r['load_s']:.1f} s{plot}{shot}")
        for problem in r["problems"]: print(f"     {problem}")
    print(f"browser check: {sum(not r['problems'] for r in results)}/{len(results)} pages ok in {time.time() - start:.1f} s")
    return 0 if all(not r["problems"] for r in results) else 1

if __name__ == "__main__":
    sys.exit(main())
