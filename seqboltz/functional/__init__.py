"""Pure tensor functions: energies, free energies, conditionals and Gibbs steps.

Everything here takes every parameter and every noise tensor as an argument; the modules in
:mod:`seqboltz.models` only hold parameters and call these functions.
"""

from seqboltz.functional._conditional import (
    factored_dynamic_biases,
    factored_hidden_input,
    factored_visible_mean,
    gated_product,
    linear_dynamic_biases,
)
from seqboltz.functional._rbm import (
    bernoulli_from_uniform,
    bernoulli_rbm_energy,
    bernoulli_rbm_free_energy,
    bernoulli_rbm_gibbs_step,
    bernoulli_rbm_hidden_free_energy,
    bernoulli_visible_probs,
    gaussian_energy_from_coupling,
    gaussian_free_energy_from_input,
    gaussian_hidden_free_energy_from_coupling,
    gaussian_rbm_energy,
    gaussian_rbm_free_energy,
    gaussian_rbm_gibbs_step,
    gaussian_rbm_hidden_free_energy,
    gaussian_visible_mean,
    hidden_input,
    hidden_probs,
    softplus,
)
from seqboltz.functional._structured import bernoulli_map_inference, bernoulli_mean_field

__all__ = [
    "bernoulli_from_uniform",
    "bernoulli_map_inference",
    "bernoulli_mean_field",
    "bernoulli_rbm_energy",
    "bernoulli_rbm_free_energy",
    "bernoulli_rbm_gibbs_step",
    "bernoulli_rbm_hidden_free_energy",
    "bernoulli_visible_probs",
    "factored_dynamic_biases",
    "factored_hidden_input",
    "factored_visible_mean",
    "gated_product",
    "gaussian_energy_from_coupling",
    "gaussian_free_energy_from_input",
    "gaussian_hidden_free_energy_from_coupling",
    "gaussian_rbm_energy",
    "gaussian_rbm_free_energy",
    "gaussian_rbm_gibbs_step",
    "gaussian_rbm_hidden_free_energy",
    "gaussian_visible_mean",
    "hidden_input",
    "hidden_probs",
    "linear_dynamic_biases",
    "softplus",
]
