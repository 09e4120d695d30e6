"""``serve --workers N``: N relay processes on one port under a supervisor (DESIGN.md section 9).

- ``supervisor``: binds the port once, starts, watches and restarts the workers, runs
  the resource collectors and answers the proxy's own paths.
- ``worker``: one relay process, the single-process app with its own registry.
- ``snapshot`` and ``channel``: a worker's registry, carried to the supervisor on demand.
- ``merge``: one exposition from all of them, exact sums that never go backwards.
- ``models``: the ``--max-models`` cap shared by every worker.
- ``forward``: a worker hands ``/readyz`` and ``/metrics`` to the supervisor.
"""
