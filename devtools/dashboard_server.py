"""Start the real dashboard server (``streamlit run dashboard/app.py``) on a free loopback port,
and drive its pages in a playwright browser.

For the browser tests and the benchmarks: they drive the same server a user runs, not AppTest.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVER_START_TIMEOUT_S = 30
CHROMIUM = Path("/usr/bin/chromium")
#: Debian's chromium under playwright: no sandbox (containers), no GPU, nothing fetched
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, deadline: float, log: Path | None = None
                 ) -> None:
    """Until ``/_stcore/health`` answers ok; raises when the server exits or the deadline passes
    (with the tail of its ``log``)."""
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log.read_text(errors="replace")[-4000:] if log is not None else ""
            raise RuntimeError(f"streamlit exited early with code {server.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer at {url} within {SERVER_START_TIMEOUT_S} s")


@contextmanager
def serve_dashboard(store: Path | str, *, extra_env: dict[str, str] | None = None,
                    with_process: bool = False) -> Iterator:
    """`streamlit run dashboard/app.py` on ``store`` at a free loopback port; yields its URL (or
    ``(url, process)`` with ``with_process``, e.g. to read its CPU time) and stops the server
    afterwards."""
    port = free_port()
    env = {**os.environ, "CROSSMODAL_LENS_STORE": str(store), **(extra_env or {})}
    # the server's log goes to a file: a pipe nobody reads would block the server once full
    with tempfile.TemporaryDirectory(prefix="crossmodal-lens-server-") as folder:
        log = Path(folder) / "server.log"
        with log.open("w") as sink:
            server = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "dashboard" / "app.py"),
                 "--server.headless", "true", "--server.port", str(port), "--server.address",
                 "127.0.0.1", "--browser.gatherUsageStats", "false",
                 "--server.fileWatcherType", "none"],
                cwd=REPO_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True)
            url = f"http://127.0.0.1:{port}"
            try:
                wait_healthy(url, server, time.monotonic() + SERVER_START_TIMEOUT_S, log)
                yield (url, server) if with_process else url
            finally:
                server.terminate()
                try:
                    server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    server.kill()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def choose_option(page, box_label: str, option: str, *, timeout_ms: int = 20_000
                  ) -> None:
    """Pick ``option`` in the page's selectbox labelled ``box_label`` (typed to filter the list)
    and wait until the box shows it."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=box_label)
    box.click()
    page.keyboard.type(option)
    page.get_by_role("option", name=option).click()
    page.wait_for_function(
        """(option) => Array.from(document.querySelectorAll('[data-testid="stSelectbox"] input'))
                          .some(i => (i.value || i.getAttribute('aria-label') || '')
                                     .includes(option))
                     || document.querySelector('[data-testid="stMain"]').innerText
                          .includes(option)""",
        arg=option, timeout=timeout_ms)


def fit_viewport_to_content(page, *, max_height: int | None = None, settle_ms: int = 500
                            ) -> None:
    """Streamlit scrolls inside its own container, so a full-page screenshot is just the viewport:
    resize the viewport (same width) to the page's content instead, at most ``max_height``, and
    give the charts ``settle_ms`` to follow the new size."""
    bottom = page.evaluate("""() => {
        const block = document.querySelector('[data-testid="stMainBlockContainer"]')
            || document.querySelector('[data-testid="stMain"]');
        return block ? block.scrollHeight + block.getBoundingClientRect().top : 0;
    }""")
    height = max(bottom + 24, 700)
    if max_height is not None:
        height = min(height, max_height)
    page.set_viewport_size({"width": page.viewport_size["width"], "height": int(height)})
    page.wait_for_timeout(settle_ms)
