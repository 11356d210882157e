"""A search whose evaluations run on a Dask LocalCluster with two worker processes."""

from __future__ import annotations

import cloudpickle
import distributed
import search_helpers
from search_helpers import OBJECTIVES, SPACE, slow_two_objectives

from nasviz.search import Search


def test_search_on_a_dask_local_cluster_with_worker_processes():
    # Workers do not have tests/ on their path: ship the helper module by value.
    cloudpickle.register_pickle_by_value(search_helpers)
    try:
        with (
            distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            search = Search(
                slow_two_objectives,
                space=SPACE,
                objectives=OBJECTIVES,
                strategy="random",
                budget=12,
                storage=":memory:",
                executor=client.get_executor(),
                workers=4,
                seed=0,
            )
            assert search.start().wait(timeout=300).state == "finished", search.traceback
            frame = search.results
            pids = {w.split(":")[1] for w in frame["worker"]}
    finally:
        cloudpickle.unregister_pickle_by_value(search_helpers)
    assert len(frame) == 12 and (frame["state"] == "COMPLETE").all()
    assert not frame[list(SPACE.names)].duplicated().any()
    assert len(pids) == 2  # both worker processes evaluated archs
