"""``serve --workers N``: N relay processes on one port under a supervisor (DESIGN.md section 9).

- ``supervisor``: makes the port's sockets, starts, watches and restarts the workers,
  runs the resource collectors and answers the proxy's own paths (``proxy.admin``).
- ``listen``: one SO_REUSEPORT socket per worker slot, kept listening across restarts.
- ``worker``: one relay process, the single-process app with its own registry.
- ``handoff``: a worker hands ``/readyz`` and ``/metrics`` to the supervisor.
- ``snapshot`` and ``channel``: a worker's registry, carried to the supervisor on demand.
- ``merge``: one exposition from all of them, exact sums that never go backwards.
- ``models``: the ``--max-models`` cap shared by every worker.
- ``private``: the supervisor's own directory, and sweeping those a SIGKILL left.
"""
