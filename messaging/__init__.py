"""Outbound messaging below consent and broadcasts: provider clients behind one interface."""
