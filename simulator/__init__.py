"""The simulated pharma plant: a pure, deterministic core (plant model + engine) and, around it,
the OPC UA server that exposes it.

- :mod:`asbuilt.plant` -- the YAML plant model (ISA-95 equipment, machine behaviour, shift
  calendar, ISA-88 recipes, materials and lots), validated into frozen pydantic models;
- :mod:`simulator.engine` -- :class:`~simulator.engine.Plant`, which turns a model, a seed and a
  start time into the OPC UA variable writes and events a real plant would produce;
- :mod:`simulator.truth` -- the ground truth of what the engine did (state intervals, counts,
  lot movements, batch transitions) for tests to compare pipelines against.
"""
