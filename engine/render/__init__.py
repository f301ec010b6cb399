"""Ray samplers, the occupancy grid and volume compositing: plain functions, fields come in as callbacks."""
