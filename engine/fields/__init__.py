"""Radiance fields, one module each. ``build_model`` turns a field name and its config into a model."""
