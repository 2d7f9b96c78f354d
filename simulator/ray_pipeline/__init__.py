"""The Ray executor: one actor per pipeline rank trains for real; the run is measured."""
