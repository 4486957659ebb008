"""Rule files: schema, loader/compiler, matcher engine and explanations."""
