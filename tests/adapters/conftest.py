"""The adapters' tests (each skipped, naming the extra to install, when its library is absent)."""
