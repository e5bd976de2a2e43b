"""Hidden checks: the same checks on inputs students never see. Instructors only.

They run at grading (`grade`, `check --all`, nbgrader's hidden tests, Gradescope), where
the reference computes their expected values; an answer hard-coded for the public inputs
fails them.
"""
from .checks import A, B, K, LB, S, in_variant
from .registry import Check, only_original
from .flow_checks import CONSTRAIN, FLOW_BOUND, PLANAR


def hidden_checks(part="vae", variant=None):
    """The hidden checks of ``part``; vae.py's in the conventions of ``variant`` (by default the original)."""
    if part == "flows":
        only_original(variant)
        return hidden_flow_checks()
    stats = dict(mean=[-0.5, 3.0, 0.2], log_std=[0.5, -2.0, 0.0], rows=20000)
    Check = in_variant(variant)
    return [
        Check("hidden: shape and reparameterization gradient", S, "sample_reparam", 8, seed=101, hidden=True,
              shapes=[(4, 10), (2, 1)]),
        Check("hidden: sample mean and standard deviation", S, "sample_moments", 8, seed=102, hidden=True, **stats),
        Check("hidden: fresh noise for every row and every call", S, "sample_independence", 4, seed=103, hidden=True,
              **stats),
        Check("hidden: values", B, "bernoulli_values", 10, seed=104, hidden=True, cases=[(3, 784), (2, 17)]),
        Check("hidden: gradient", B, "bernoulli_gradient", 10, seed=105, hidden=True, cases=[(2, 30)]),
        Check("hidden: values", K, "kl_values", 10, seed=106, hidden=True, cases=[(3, 7), (1, 20)]),
        Check("hidden: gradient", K, "kl_gradient", 10, seed=107, hidden=True, cases=[(2, 6)]),
        Check("hidden: value", LB, "lower_bound_value", 9, seed=108, hidden=True, batch=6, latent=4, width=3),
        Check("hidden: parts", LB, "lower_bound_parts", 8, seed=109, hidden=True, batch=2, latent=5, width=3),
        Check("hidden: gradient", LB, "lower_bound_gradient", 8, seed=110, hidden=True, batch=2, latent=3, width=3),
        Check("hidden: four steps", A, "adam", 15, seed=111, hidden=True, size=7, scales=[1e-2, 1e2, 1.0, 1e4],
              learning_rate=0.003, beta1=0.8, beta2=0.99, epsilon=1e-4),
    ]


def hidden_flow_checks():
    return [
        Check("hidden: values", CONSTRAIN, "constrain_values", 6, seed=301, hidden=True,
              cases=[(7, -4.0), (1, 0.0), (3, -1.0)]),
        Check("hidden: gradient", CONSTRAIN, "constrain_gradient", 4, seed=302, hidden=True, cases=[(3, 1.5)],
              wrt=[0, 1]),
        Check("hidden: values", PLANAR, "planar_values", 10, seed=303, hidden=True, cases=[(5, 2, 2.0), (2, 7, -0.5)]),
        Check("hidden: gradient", PLANAR, "planar_gradient", 8, seed=304, hidden=True, cases=[(3, 5, -0.5)],
              wrt=[0, 1, 2, 3]),
        Check("hidden: value", FLOW_BOUND, "flow_bound_value", 9, seed=305, hidden=True, batch=5, latent=4, width=3,
              flows=2),
        Check("hidden: parts", FLOW_BOUND, "flow_bound_parts", 8, seed=306, hidden=True, batch=2, latent=2, width=3,
              flows=4),
        Check("hidden: gradient", FLOW_BOUND, "flow_bound_gradient", 8, seed=307, hidden=True, batch=2, latent=3,
              width=3, flows=1),
    ]
