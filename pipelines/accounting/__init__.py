"""The pure core shared by the OEE and downtime flows: no I/O, no Bytewax, no clocks.

- :mod:`.model` -- the types: time categories, classified segments, minute rows;
- :mod:`.mapping` -- PackML state × unit mode × stop reason → time category (versioned YAML);
- :mod:`.schedule` -- the shift calendar of the plant model: shift, break or no-shift time;
- :mod:`.counters` -- cumulative counters → increments (baseline, resets, rollovers);
- :mod:`.timeline` -- one asset's events → classified segments and one-minute rows,
  with lateness and corrections.
"""
