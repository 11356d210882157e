"""Static PNG images of plotly figures, rendered by kaleido in a headless Chrome/Chromium.

Saved notebooks carry a PNG beside each figure's plotly JSON, so that nbconvert's HTML, PDF
exports and GitHub show it without any JavaScript. kaleido 1.x drives a Chrome or Chromium it
finds itself: ``$BROWSER_PATH``, one downloaded with ``plotly_get_chrome``, or one on ``PATH``
(Debian's ``chromium``). It loads plotly.js from the installed plotly package, and MathJax is
turned off here, so rendering works offline.

Starting a browser takes seconds, so one is started on first use and kept for the process
(closed at exit). Where there is no browser (a Binder image without one, say) or kaleido fails,
:func:`png` returns None and :func:`unavailable` says why; figures are then saved without an
image, never with an error.

Contract: :func:`png` may be called from any thread; renders run one at a time.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures as cf
import contextlib
import threading
import warnings
from typing import Any

from nasviz.errors import NasvizWarning

__all__ = ["png", "unavailable"]

#: Seconds allowed to start the browser, and to render one image.
START_TIMEOUT = 120.0
RENDER_TIMEOUT = 60.0


class _Renderer:
    """One kaleido browser on an event loop of its own thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.kaleido: Any = None
        self.reason: str | None = None  # why there are no images (None: none tried, or fine)

    def start(self) -> bool:
        if self.kaleido is not None:
            return True
        if self.reason is not None:
            return False
        try:
            import kaleido
        except ImportError:
            return self._fail("kaleido is not installed (pip install 'kaleido>=1')")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="nasviz-kaleido", daemon=True)
        thread.start()

        async def open_browser() -> Any:
            k = kaleido.Kaleido(n=1, timeout=RENDER_TIMEOUT, mathjax=False)
            await k.open()
            return k

        try:
            self.kaleido = asyncio.run_coroutine_threadsafe(open_browser(), loop).result(
                START_TIMEOUT
            )
        except Exception as exc:  # no browser, a browser that cannot start, a timeout
            loop.call_soon_threadsafe(loop.stop)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return self._fail(f"kaleido could not start a Chrome/Chromium ({first[:200]})")
        self.loop = loop
        atexit.register(self.close)
        return True

    def _fail(self, reason: str) -> bool:
        self.reason = (
            f"{reason}; figures are saved without a static image (install chromium, or run "
            "`plotly_get_chrome`, to get PNGs in saved notebooks)"
        )
        warnings.warn(self.reason, NasvizWarning, stacklevel=4)
        return False

    def render(self, figure: dict[str, Any], width: int, height: int) -> bytes | None:
        with self.lock:
            if not self.start():
                return None
            opts = {"format": "png", "width": width, "height": height, "scale": 1}
            future = asyncio.run_coroutine_threadsafe(
                self.kaleido.calc_fig(figure, opts=opts), self.loop
            )
            try:
                return future.result(RENDER_TIMEOUT + 10)
            except (Exception, cf.TimeoutError) as exc:
                future.cancel()
                warnings.warn(
                    f"a static image could not be rendered ({type(exc).__name__}: {exc}); "
                    "the figure is saved without one",
                    NasvizWarning,
                    stacklevel=3,
                )
                return None

    def close(self) -> None:
        with self.lock:
            if self.kaleido is None or self.loop is None:
                return
            kaleido, loop, self.kaleido, self.loop = self.kaleido, self.loop, None, None
        with contextlib.suppress(Exception):  # at exit: the browser may be gone already
            asyncio.run_coroutine_threadsafe(kaleido.close(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)


_renderer = _Renderer()


def png(figure: dict[str, Any], width: int = 760, height: int = 450) -> bytes | None:
    """The figure (a plotly figure dict) as PNG bytes, or None where no image can be made
    (see :func:`unavailable`)."""
    return _renderer.render(figure, width, height)


def unavailable() -> str | None:
    """Why figures get no static image in this process (None: images work, or none was tried)."""
    return _renderer.reason
