"""Online scorers that learn an entity's normal from its own history (river's detector protocol)."""
