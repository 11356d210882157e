"""``python -m bench._run_notebook NOTEBOOK CWD``: runs one notebook under papermill pinned to one
CPU (as on a free Binder instance) and prints ``{"wall_s", "peak_mb"}`` as JSON; the peak is the
largest resident set of any child process (the kernel)."""

from __future__ import annotations

import json
import os
import resource
import sys
import time

import papermill


def main(notebook: str, cwd: str) -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one CPU, inherited by the kernel
    os.environ["OMP_NUM_THREADS"] = "1"
    t0 = time.perf_counter()
    papermill.execute_notebook(
        notebook,
        os.path.join(cwd, os.path.basename(notebook)),
        cwd=cwd,
        kernel_name="python3",
        progress_bar=False,
    )
    wall = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"wall_s": wall, "peak_mb": peak_kb / 1024}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
