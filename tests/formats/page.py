#!/usr/bin/env python3
"""tests/formats/page.py - load a page written by `orchd --report-html FILE`
in a real headless Chromium (Debian package chromium) with JavaScript
disabled, and check the DOM Chromium built from it.

Usage: python3 tests/formats/page.py FILE.html [--screenshot OUT.png]
           [--absent TEXT]... [--no-element TAG]... ID...

Checks, on the DOM Chromium built (DOM.getOuterHTML), not on the file:
  - each ID has a timeline row (an SVG <g class="bar-row"> whose
    data-instance is ID) with at least one <rect>, a node in the dependency
    graph, a row in the summary and a <details> log element;
  - no TEXT given with --absent appears anywhere in the document, and no
    element named by --no-element exists (text that became markup);
  - the page is self-contained: no <script>, no <link>, no <img>, <iframe>,
    <object> or <embed>, no src attribute, no url( in a style, and every
    href is a fragment (#...).
Exit 0 when all hold, 1 on the first that does not, 2 when Chromium is
missing or fails.
"""
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    print("page.py: chromium not found (Debian: apt-get install chromium)", file=sys.stderr)
    sys.exit(2)


class Browser:
    """Chromium driven over the DevTools protocol on a pipe
    (--remote-debugging-pipe: commands on its fd 3, replies and events on
    its fd 4, each message JSON ended by a NUL byte)."""

    def __init__(self, profile):
        cmd_r, self.cmd_w = os.pipe()
        self.out_r, out_w = os.pipe()
        # the child's ends above 10 first, so that moving them to 3 and 4
        # clobbers nothing (and dup2 clears close-on-exec on the copies)
        hi_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD_CLOEXEC, 10)
        hi_w = fcntl.fcntl(out_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(cmd_r)
        os.close(out_w)
        cmd_r, out_w = hi_r, hi_w

        def child():
            os.dup2(cmd_r, 3)
            os.dup2(out_w, 4)
        self.proc = subprocess.Popen(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions",
             "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=child, close_fds=False)
        os.close(cmd_r)
        os.close(out_w)
        self.buf = b""
        self.next_id = 0

    def _read(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.out_r], [], [], left)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self.out_r, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed its pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=None, wait_event=None, timeout=60):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        result, event = None, wait_event is None
        while result is None or not event:
            m = self._read(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                result = m.get("result", {})
            elif wait_event and m.get("method") == wait_event:
                event = True
        return result

    def close(self):
        try:
            self.call("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def render(page, shot):
    """Load page with scripts disabled; its DOM as HTML, and a screenshot."""
    with tempfile.TemporaryDirectory(prefix="orchd-chromium-") as profile:
        b = Browser(profile)
        try:
            targets = b.call("Target.getTargets")["targetInfos"]
            tid = next(t["targetId"] for t in targets if t["type"] == "page")
            sid = b.call("Target.attachToTarget", {"targetId": tid, "flatten": True})["sessionId"]
            b.call("Emulation.setScriptExecutionDisabled", {"value": True}, sid)
            b.call("Page.enable", None, sid)
            b.call("Page.navigate", {"url": "file://" + page}, sid,
                   wait_event="Page.loadEventFired")
            root = b.call("DOM.getDocument", {"depth": -1}, sid)["root"]
            dom = b.call("DOM.getOuterHTML", {"nodeId": root["nodeId"]}, sid)["outerHTML"]
            if shot:
                b.call("Emulation.setDeviceMetricsOverride",
                       {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
                       sid)
                png = b.call("Page.captureScreenshot",
                             {"format": "png", "captureBeyondViewport": True}, sid)["data"]
                with open(shot, "wb") as f:
                    f.write(base64.b64decode(png))
        except (TimeoutError, EOFError, RuntimeError, StopIteration, KeyError) as e:
            print(f"page.py: chromium: {type(e).__name__}: {e}", file=sys.stderr)
            sys.exit(2)
        finally:
            b.close()
    return dom


class Dom(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []
        self.rows = {}        # id -> rects in its timeline row
        self.nodes = set()    # ids in the graph
        self.summary = set()  # ids in the summary table
        self.logs = set()     # ids with a <details>
        self.problems = []
        self.text = []
        self.tags = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        cls = (a.get("class") or "").split()
        inst = a.get("data-instance")
        if tag in ("script", "link", "img", "iframe", "object", "embed"):
            self.problems.append(f"<{tag}> in the page")
        if "src" in a:
            self.problems.append(f"src attribute on <{tag}>")
        if "href" in a and not (a["href"] or "").startswith("#"):
            self.problems.append(f"href to {a['href']!r}")
        if "url(" in (a.get("style") or ""):
            self.problems.append("url( in a style attribute")
        if tag == "g" and "bar-row" in cls and inst is not None:
            self.rows.setdefault(inst, 0)
        if tag == "g" and "node" in cls and inst is not None:
            self.nodes.add(inst)
        if tag == "tr" and inst is not None:
            self.summary.add(inst)
        if tag == "details" and inst is not None:
            self.logs.add(inst)
        if tag == "rect":
            for t, c, i in reversed(self.stack):
                if t == "g" and "bar-row" in c and i is not None:
                    self.rows[i] += 1
                    break
        for k, v in attrs:
            if v:
                self.text.append(v)
        if tag not in ("rect", "line", "path", "meta", "br"):
            self.stack.append((tag, cls, inst))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if self.stack and self.stack[-1][0] == tag:
            self.stack.pop()

    def handle_endtag(self, tag):
        for k in range(len(self.stack) - 1, -1, -1):
            if self.stack[k][0] == tag:
                del self.stack[k:]
                break

    def handle_data(self, data):
        self.text.append(data)


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    page = os.path.abspath(args.pop(0))
    shot, absent, ids, no_elem = None, [], [], []
    while args:
        a = args.pop(0)
        if a == "--screenshot":
            shot = os.path.abspath(args.pop(0))
        elif a == "--absent":
            absent.append(args.pop(0))
        elif a == "--no-element":
            no_elem.append(args.pop(0))
        else:
            ids.append(a)
    dom_text = render(page, shot)
    if shot and (not os.path.exists(shot) or os.path.getsize(shot) == 0):
        print(f"FAIL {page}: no screenshot written")
        sys.exit(1)
    dom = Dom()
    dom.feed(dom_text)
    fails = list(dom.problems)
    for i in ids:
        if dom.rows.get(i, 0) < 1:
            fails.append(f"{i}: no timeline bar")
        if i not in dom.nodes:
            fails.append(f"{i}: not in the dependency graph")
        if i not in dom.summary:
            fails.append(f"{i}: not in the summary")
        if i not in dom.logs:
            fails.append(f"{i}: no log")
    for t in no_elem:
        if t in dom.tags:
            fails.append(f"a <{t}> element in the DOM (text became markup)")
    whole = dom_text + "\n".join(dom.text)
    for t in absent:
        if t in whole:
            fails.append(f"{t!r} appears in the document")
    if fails:
        for f in fails:
            print(f"FAIL {page}: {f}")
        sys.exit(1)
    print(f"ok   {page}: {len(dom.rows)} timeline rows, {len(dom.nodes)} graph nodes, "
          f"{len(dom.logs)} logs; {len(dom_text)} bytes of DOM"
          + (f"; screenshot {shot}" if shot else ""))


main()
