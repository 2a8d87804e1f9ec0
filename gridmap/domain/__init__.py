"""The programme's vocabulary: enumerations, ID numbers, phone numbers; no I/O."""
