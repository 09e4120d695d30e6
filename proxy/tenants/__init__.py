"""Who a request is for (DESIGN.md section 14): the tenant a header or an API key names.

``names`` holds what a tenant value may be, ``keys`` the ``--tenant-keys`` file (digests,
reloads), ``identity`` the one call the relay makes per request. The label's cap and the
per-tenant counters live with the other metrics, in proxy.metrics.tenants.
"""
