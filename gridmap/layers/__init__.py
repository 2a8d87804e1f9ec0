"""Geodata of the grid map: admin units, grids, roads, coordinate systems, geocoding."""
