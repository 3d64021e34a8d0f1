"""Looking inside trained networks: one module per technique; hooks live in `hooks`."""
