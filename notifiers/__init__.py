"""Notice channels: one module per channel behind one interface (``base.Notifier``)."""
