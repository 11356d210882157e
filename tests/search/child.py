"""A child process for the multi-process tests: imports nasviz once, prints ``ready``, then runs
jobs read from stdin, one JSON object per line, until stdin closes:

* ``{"job": "shared", "storage": ..., "budget": ..., "go": path, "hang_after": k}``: waits for
  the file ``go``, then runs a seeded random search of ``shared_fn`` over ``WIDE``;
* ``{"job": "halving", "storage": ..., "budget": ..., "hang_after": k}``: a successive-halving
  search of ``trains``;
* ``{"job": "lock", "journal": path}``: takes the journal's write lock, prints ``locked`` and
  holds it until killed;
* ``{"job": "cli", "argv": [...]}``: runs the ``nasviz`` command line (``nasviz worker ...``)
  and prints ``done <exit code>``.

Prints ``result <trial>`` per result event, ``hang ...`` when an evaluation hangs (see
``search_helpers``), ``done <state>`` at the end of a job.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

import search_helpers
from search_helpers import OBJECTIVES, STEPS, WIDE, say, shared_fn, trains

from nasviz.pipeline import main
from nasviz.search import Search, SuccessiveHalving
from nasviz.search._journal import JournalLock

print("ready", flush=True)
for line in sys.stdin:
    job = json.loads(line)
    search_helpers.HANG_AFTER = job.get("hang_after", 0)
    search_helpers._SHARED_CALLS = itertools.count(1)
    if job["job"] == "lock":
        JournalLock(job["journal"]).acquire()
        print("locked", flush=True)
        time.sleep(3600)
    if job["job"] == "cli":
        print("done", main(job["argv"]), flush=True)
        continue
    if job["job"] == "shared":
        while not Path(job["go"]).exists():
            time.sleep(0.01)
        fn, options = shared_fn, {"strategy": "random", "seed": 0}
    else:
        halving = SuccessiveHalving(min_step=1, eta=3, max_step=STEPS)
        fn, options = trains, {"strategy": "random", "seed": 1, "pruner": halving}
    search = Search(
        fn, WIDE, objectives=OBJECTIVES, budget=job["budget"], storage=job["storage"], **options
    )
    search.subscribe(lambda e: say("result", e.data["trial"]) if e.kind == "result" else None)
    status = search.run()
    print("done", status.state, search.traceback.replace("\n", " | "), flush=True)
