"""What shows infermeter working with no model and no GPU: ``infermeter demo`` (simulator,
proxy, load and a live summary) and ``infermeter load`` (the load alone)."""
