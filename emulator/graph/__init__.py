"""Microsoft Graph areas of the emulator (one module per area)."""
