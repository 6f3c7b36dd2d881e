"""The Amaranth 0.5 RTL of the synapse array, built from the same Spec as the golden model."""
