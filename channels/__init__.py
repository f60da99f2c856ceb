"""Payout channel adapters: one module per channel behind one interface (``base.Channel``).
Each adapter turns the channel's native payloads into canonical ``Observation``s."""
