"""Customer care: conversations with people and the agents' replies (rule 18 of docs/design.md)."""
