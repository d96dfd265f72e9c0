"""The shared base every layer may import: names both targets share, errors, recipes, storage, values."""
