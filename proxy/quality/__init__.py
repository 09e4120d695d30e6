"""Model metrics (DESIGN.md section 15): checks on every answer, a judge on a sample."""
