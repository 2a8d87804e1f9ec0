"""The register (台账): fields, validation, import from departments, merge, history, first contacts."""
