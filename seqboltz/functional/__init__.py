"""Pure tensor functions: energies, free energies, conditionals and Gibbs steps.

Everything here takes every parameter and every noise tensor as an argument; the modules in
:mod:`seqboltz.models` only hold parameters and call these functions.
"""

from seqboltz.functional._rbm import (
    bernoulli_from_uniform,
    bernoulli_rbm_energy,
    bernoulli_rbm_free_energy,
    bernoulli_rbm_gibbs_step,
    bernoulli_rbm_hidden_free_energy,
    bernoulli_visible_probs,
    gaussian_rbm_energy,
    gaussian_rbm_free_energy,
    gaussian_rbm_gibbs_step,
    gaussian_rbm_hidden_free_energy,
    gaussian_visible_mean,
    hidden_input,
    hidden_probs,
)

__all__ = [
    "bernoulli_from_uniform",
    "bernoulli_rbm_energy",
    "bernoulli_rbm_free_energy",
    "bernoulli_rbm_gibbs_step",
    "bernoulli_rbm_hidden_free_energy",
    "bernoulli_visible_probs",
    "gaussian_rbm_energy",
    "gaussian_rbm_free_energy",
    "gaussian_rbm_gibbs_step",
    "gaussian_rbm_hidden_free_energy",
    "gaussian_visible_mean",
    "hidden_input",
    "hidden_probs",
]
