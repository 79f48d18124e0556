"""TDPO-R: temporal diffusion policy optimisation with critic active-neuron reset (Zhang et al., ICML 2024)."""
