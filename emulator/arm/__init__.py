"""Azure Resource Manager providers of the emulator (one module per provider)."""
