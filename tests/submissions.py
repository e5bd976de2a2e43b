"""Submissions for testing the grader, made from the reference by swapping one function's code.

Each entry: (function, code). The code replaces that function's solution region in
solution/vae.py, or solution/flows.py for FLOW_BUGS and FLOW_ALTERNATIVES (indented four
spaces), so every other function stays correct.
"""
import os
import textwrap

from grader.parts import FUNCTIONS, PARTS
from grader.paths import ASSIGNMENT, ROOT
from grader.release import solution_regions

S, B, K, LB, A = FUNCTIONS

SPLIT = "mean, log_std = np.split(encoder_output, 2, axis=-1)\n"

# mistake -> (function, code, words the hint must contain)
BUGS = {
    "sample_exp_half": (S, SPLIT + "return mean + np.exp(log_std / 2) * npr.randn(*mean.shape)", "exp(log_std / 2)"),
    "sample_variance": (S, SPLIT + "return mean + np.exp(2 * log_std) * npr.randn(*mean.shape)", "variance"),
    "sample_uniform": (S, SPLIT + "return mean + np.exp(log_std) * npr.rand(*mean.shape)", "uniform"),
    "sample_shared_noise": (S, SPLIT + "return mean + np.exp(log_std) * npr.randn(1, mean.shape[1])", "shared"),
    "sample_detached": (S, SPLIT + "from autograd.tracer import getval\n"
                           "return mean + np.exp(getval(log_std)) * npr.randn(*mean.shape)", "not reparameterized"),
    "sample_whole_output": (S, "return encoder_output + npr.randn(*encoder_output.shape)", "return only z"),
    "bernoulli_per_pixel": (B, "return targets * logits - np.logaddexp(0, logits)", "one value per element"),
    "bernoulli_negated": (B, "return -np.sum(targets * logits - np.logaddexp(0, logits), axis=-1)", "wrong sign"),
    "bernoulli_mean": (B, "return np.mean(targets * logits - np.logaddexp(0, logits), axis=-1)", "averaged"),
    "bernoulli_plain_numpy": (B, "import numpy\n"
                                 "return numpy.sum(targets * logits - numpy.logaddexp(0, numpy.asarray(logits)), axis=-1)",
                              ""),
    "kl_logvar": (K, "mean, log_var = np.split(q_means_and_log_stds, 2, axis=-1)\n"
                     "return 0.5 * np.sum(np.exp(log_var) + mean ** 2 - 1 - log_var, axis=-1)", "log-variance"),
    "kl_no_constant": (K, "mean, log_std = np.split(q_means_and_log_stds, 2, axis=-1)\n"
                          "return np.sum(0.5 * (np.exp(2 * log_std) + mean ** 2) - log_std, axis=-1)", "L/2"),
    "kl_per_dimension": (K, "mean, log_std = np.split(q_means_and_log_stds, 2, axis=-1)\n"
                            "return 0.5 * (np.exp(2 * log_std) + mean ** 2 - 1) - log_std", "one value per latent"),
    "kl_negated": (K, "mean, log_std = np.split(q_means_and_log_stds, 2, axis=-1)\n"
                      "return -np.sum(0.5 * (np.exp(2 * log_std) + mean ** 2 - 1) - log_std, axis=-1)", "wrong sign"),
}
LB_HEAD = ("q = neural_net_predict(rec_params, data)\n"
           "z = sample_latent_variables_from_posterior(q)\n"
           "logits = neural_net_predict(gen_params, z)\n")
BUGS.update({
    "lower_bound_sum": (LB, LB_HEAD + "return np.sum(bernoulli_log_prob(data, logits) - compute_KL(q))", "summed"),
    "lower_bound_plus_kl": (LB, LB_HEAD + "return np.mean(bernoulli_log_prob(data, logits) + compute_KL(q))",
                            "added the KL"),
    "lower_bound_no_kl": (LB, LB_HEAD + "return np.mean(bernoulli_log_prob(data, logits))", "KL term is missing"),
    "lower_bound_negated": (LB, LB_HEAD + "return -np.mean(bernoulli_log_prob(data, logits) - compute_KL(q))",
                            "negated"),
    "lower_bound_scaled": (LB, LB_HEAD + "return 60000 / data.shape[0] * np.sum(bernoulli_log_prob(data, logits) "
                                         "- compute_KL(q)) / data.shape[0]", "scaled"),
    "lower_bound_at_mean": (LB, "q = neural_net_predict(rec_params, data)\n"
                                "logits = neural_net_predict(gen_params, q[:, :q.shape[1] // 2])\n"
                                "return np.mean(bernoulli_log_prob(data, logits) - compute_KL(q))", "posterior mean"),
    "lower_bound_sigmoid_twice": (LB, LB_HEAD + "return np.mean(bernoulli_log_prob(data, sigmoid(logits)) "
                                                "- compute_KL(q))", "sigmoid is applied twice"),
    "lower_bound_swapped": (LB, LB_HEAD + "return np.mean(bernoulli_log_prob(logits, data) - compute_KL(q))", "swapped"),
    "lower_bound_two_samples": (LB, "q = neural_net_predict(rec_params, data)\n"
                                    "total = 0\n"
                                    "for _ in range(2):\n"
                                    "    z = sample_latent_variables_from_posterior(q)\n"
                                    "    total = total + bernoulli_log_prob(data, neural_net_predict(gen_params, z))\n"
                                    "return np.mean(total / 2 - compute_KL(q))", "2 samples"),
    # the real patterns of issue #10
    "sample_reseeds": (S, SPLIT + "npr.seed(0)\nreturn mean + np.exp(log_std) * npr.randn(*mean.shape)", "reseeds"),
    "sample_fixed_generator": (S, SPLIT + "import numpy\nrng = numpy.random.default_rng(42)\n"
                                  "return mean + np.exp(log_std) * rng.standard_normal(mean.shape)", "reseeds"),
    "lower_bound_np_average": (LB, LB_HEAD + "return np.average(bernoulli_log_prob(data, logits) - compute_KL(q))",
                               "autograd cannot differentiate np.average; use np.mean"),
    "bernoulli_naive_per_pixel": (B, "p = 1 / (1 + np.exp(-logits))\n"
                                     "return targets * np.log(p) + (1 - targets) * np.log(1 - p)",
                                  "one value per element"),
})
ADAM_TAIL = "return params, m, v"
BUGS.update({
    "adam_descent": (A, "m = beta1 * m + (1 - beta1) * gradient\nv = beta2 * v + (1 - beta2) * gradient ** 2\n"
                        "params = params - learning_rate * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + epsilon)\n"
                        + ADAM_TAIL, "downhill"),
    "adam_no_bias_correction": (A, "m = beta1 * m + (1 - beta1) * gradient\nv = beta2 * v + (1 - beta2) * gradient ** 2\n"
                                   "params = params + learning_rate * m / (np.sqrt(v) + epsilon)\n" + ADAM_TAIL,
                                "bias correction"),
    "adam_t_plus_1": (A, "m = beta1 * m + (1 - beta1) * gradient\nv = beta2 * v + (1 - beta2) * gradient ** 2\n"
                         "params = params + learning_rate * (m / (1 - beta1 ** (t + 1))) / "
                         "(np.sqrt(v / (1 - beta2 ** (t + 1))) + epsilon)\n" + ADAM_TAIL, "t + 1"),
    "adam_no_sqrt": (A, "m = beta1 * m + (1 - beta1) * gradient\nv = beta2 * v + (1 - beta2) * gradient ** 2\n"
                        "params = params + learning_rate * (m / (1 - beta1 ** t)) / ((v / (1 - beta2 ** t)) + epsilon)\n"
                        + ADAM_TAIL, "square root"),
    "adam_moments_not_carried": (A, "m_new = (1 - beta1) * gradient\nv_new = (1 - beta2) * gradient ** 2\n"
                                    "params = params + learning_rate * (m_new / (1 - beta1 ** t)) / "
                                    "(np.sqrt(v_new / (1 - beta2 ** t)) + epsilon)\nreturn params, m_new, v_new",
                                 "not carried"),
    "adam_eps_inside": (A, "m = beta1 * m + (1 - beta1) * gradient\nv = beta2 * v + (1 - beta2) * gradient ** 2\n"
                           "params = params + learning_rate * (m / (1 - beta1 ** t)) / "
                           "np.sqrt(v / (1 - beta2 ** t) + epsilon)\n" + ADAM_TAIL, "epsilon"),
    "adam_ignores_learning_rate": (A, "m = beta1 * m + (1 - beta1) * gradient\nv = beta2 * v + (1 - beta2) * gradient ** 2\n"
                                      "params = params + 0.001 * (m / (1 - beta1 ** t)) / "
                                      "(np.sqrt(v / (1 - beta2 ** t)) + epsilon)\n" + ADAM_TAIL, "use the argument learning_rate"),
    "adam_hardcoded_defaults": (A, "m = 0.9 * m + (1 - 0.9) * gradient\nv = 0.999 * v + (1 - 0.999) * gradient ** 2\n"
                                   "params = params + learning_rate * (m / (1 - 0.9 ** t)) / "
                                   "(np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)\n" + ADAM_TAIL, "use the arguments beta1, beta2 and epsilon"),
    "adam_hardcoded_epsilon": (A, "m = beta1 * m + (1 - beta1) * gradient\nv = beta2 * v + (1 - beta2) * gradient ** 2\n"
                                  "params = params + learning_rate * (m / (1 - beta1 ** t)) / "
                                  "(np.sqrt(v / (1 - beta2 ** t)) + 1e-8)\n" + ADAM_TAIL, "use the argument epsilon"),
    "adam_slightly_off": (A, "m = beta1 * m + (1 - beta1) * gradient\nv = beta2 * v + (1 - beta2) * gradient ** 2\n"
                             "params = params + (1 + 5e-7) * learning_rate * (m / (1 - beta1 ** t)) / "
                             "(np.sqrt(v / (1 - beta2 ** t)) + epsilon)\n" + ADAM_TAIL, "relative difference"),
})

# correct answers written differently: full marks
ALTERNATIVES = {
    "sample_normal_noise": (S, SPLIT + "return mean + np.exp(log_std) * np.random.normal(size=mean.shape)"),
    "sample_generator": (S, SPLIT + "import numpy\nrng = numpy.random.default_rng()\n"
                            "return mean + np.exp(log_std) * rng.standard_normal(mean.shape)"),
    "sample_slicing": (S, "L = encoder_output.shape[1] // 2\n"
                          "return encoder_output[:, :L] + np.exp(encoder_output[:, L:]) * npr.randn(encoder_output.shape[0], L)"),
    "bernoulli_logaddexp": (B, "return np.sum(targets * logits - np.logaddexp(0, logits), axis=-1)"),
    "bernoulli_signed_softplus": (B, "signs = 2 * targets - 1\nreturn -np.sum(np.logaddexp(0, -signs * logits), axis=-1)"),
    "bernoulli_naive": (B, "p = 1 / (1 + np.exp(-logits))\n"
                           "return np.sum(np.log(targets * p + (1 - targets) * (1 - p)), axis=-1)"),
    "kl_textbook": (K, "mean, log_std = np.split(q_means_and_log_stds, 2, axis=-1)\n"
                       "return -0.5 * np.sum(1 + 2 * log_std - mean ** 2 - np.exp(2 * log_std), axis=-1)"),
    "kl_with_std": (K, "L = q_means_and_log_stds.shape[-1] // 2\nmean = q_means_and_log_stds[:, :L]\n"
                       "std = np.exp(q_means_and_log_stds[:, L:])\n"
                       "return np.sum(-np.log(std) + (std ** 2 + mean ** 2) / 2 - 0.5, axis=-1)"),
    "lower_bound_np_mean": (LB, LB_HEAD + "return np.mean(bernoulli_log_prob(data, logits) - compute_KL(q))"),
    "lower_bound_keywords": (LB, "q = neural_net_predict(params=rec_params, inputs=data)\n"
                                 "z = sample_latent_variables_from_posterior(encoder_output=q)\n"
                                 "logits = neural_net_predict(params=gen_params, inputs=z)\n"
                                 "return np.mean(bernoulli_log_prob(targets=data, logits=logits) "
                                 "- compute_KL(q_means_and_log_stds=q))"),
    "lower_bound_row_by_row": (LB, "total = 0.0\n"
                                   "for i in range(data.shape[0]):\n"
                                   "    q = neural_net_predict(rec_params, data[i:i + 1])\n"
                                   "    z = sample_latent_variables_from_posterior(q)\n"
                                   "    logits = neural_net_predict(gen_params, z)\n"
                                   "    total = total + np.sum(bernoulli_log_prob(data[i:i + 1], logits) - compute_KL(q))\n"
                                   "return total / data.shape[0]"),
    "lower_bound_row_vectors": (LB, "bounds = []\n"
                                    "for x in data:\n"
                                    "    q = neural_net_predict(rec_params, x)\n"
                                    "    logits = neural_net_predict(gen_params, sample_latent_variables_from_posterior(q))\n"
                                    "    bounds.append(bernoulli_log_prob(x, logits) - compute_KL(q))\n"
                                    "return sum(bounds) / len(bounds)"),
    "adam_folded_step": (A, "m = beta1 * m + (1 - beta1) * gradient\nv = beta2 * v + (1 - beta2) * gradient ** 2\n"
                            "m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)\n"
                            "return params + learning_rate * m_hat / (np.sqrt(v_hat) + epsilon), m, v"),
    # in-place updates, as students write them: the arrays passed in are changed and returned
    "adam_in_place": (A, "m *= beta1\nm += (1 - beta1) * gradient\nv *= beta2\nv += (1 - beta2) * gradient ** 2\n"
                         "m_hat = m / (1 - beta1 ** t)\nv_hat = v / (1 - beta2 ** t)\n"
                         "params += learning_rate * m_hat / (np.sqrt(v_hat) + epsilon)\nreturn params, m, v"),
    "adam_slice_assignment": (A, "m[:] = beta1 * m + (1 - beta1) * gradient\nv[:] = beta2 * v + (1 - beta2) * gradient ** 2\n"
                                 "params[:] = params + learning_rate * (m / (1 - beta1 ** t)) / "
                                 "(np.sqrt(v / (1 - beta2 ** t)) + epsilon)\nreturn params, m, v"),
}


C, P, FB = PARTS["flows"]
WU = "wu = np.dot(w, u)\n"
PLANAR_HEAD = "u_hat = constrain_u(u, w)\nh = np.tanh(np.dot(z, w) + b)\n"
PLANAR_TAIL = "return z + h[:, None] * u_hat, log_det"
BOUND_HEAD = ("encoder_output = neural_net_predict(rec_params, data)\n"
              "mean, log_std = np.split(encoder_output, 2, axis=-1)\n"
              "z0 = sample_latent_variables_from_posterior(encoder_output)\n"
              "log_q0 = np.sum(-0.5 * ((z0 - mean) / np.exp(log_std)) ** 2 - log_std - HALF_LOG_2PI, axis=-1)\n")
FLOWS_LOOP = "z, total = z0, 0.0\nfor u, w, b in flow_params:\n    z, log_det = planar_flow(z, u, w, b)\n    total = total + log_det\n"
PRIOR = "log_prior = np.sum(-0.5 * z ** 2 - HALF_LOG_2PI, axis=-1)\n"
DECODE = "logits = neural_net_predict(gen_params, z)\n"


def bound(expression, loop=FLOWS_LOOP, prior=PRIOR, decode=DECODE):
    return BOUND_HEAD + loop + prior + decode + f"return {expression}"


CORRECT = "np.mean(bernoulli_log_prob(data, logits) + log_prior - log_q0 + total)"
# flows.py: mistake -> (function, code, words the hint must contain)
FLOW_BUGS = {
    "constrain_unchanged": (C, "return u", "unchanged"),
    "constrain_no_minus_one": (C, WU + "return u + (np.logaddexp(0, wu) - wu) * w / np.dot(w, w)", "-1 is missing"),
    "constrain_norm": (C, WU + "return u + (-1 + np.logaddexp(0, wu) - wu) * w / np.sqrt(np.dot(w, w))", "not by |w|"),
    "constrain_overflows": (C, WU + "return u + (-1 + np.log(1 + np.exp(wu)) - wu) * w / np.dot(w, w)", "overflows"),
    "constrain_detached": (C, "from autograd.tracer import getval\n" + WU +
                           "return u + (-1 + np.logaddexp(0, getval(wu)) - wu) * w / np.dot(w, w)", "finite differences"),
    "constrain_scalar": (C, WU + "return -1 + np.logaddexp(0, wu)", "not the number"),
    "planar_no_constraint": (P, "h = np.tanh(np.dot(z, w) + b)\n"
                                "return z + h[:, None] * u, np.log(np.abs(1 + (1 - h ** 2) * np.dot(w, u)))",
                             "never calls constrain_u"),
    "planar_u_in_log_det": (P, PLANAR_HEAD + "log_det = np.log(np.abs(1 + (1 - h ** 2) * np.dot(w, u)))\n" + PLANAR_TAIL,
                            "w . u where w . u_hat"),
    "planar_no_derivative": (P, PLANAR_HEAD + "log_det = np.log(np.abs(1 + np.dot(w, u_hat))) + 0 * h\n" + PLANAR_TAIL,
                             "1 - tanh(a)^2"),
    "planar_tanh_not_derivative": (P, PLANAR_HEAD + "log_det = np.log(np.abs(1 + h * np.dot(w, u_hat)))\n" + PLANAR_TAIL,
                                   "derivative"),
    "planar_no_log": (P, PLANAR_HEAD + "log_det = np.abs(1 + (1 - h ** 2) * np.dot(w, u_hat))\n" + PLANAR_TAIL,
                      "not the determinant"),
    "planar_column_log_det": (P, PLANAR_HEAD + "log_det = np.log(np.abs(1 + (1 - h ** 2) * np.dot(w, u_hat)))[:, None]\n"
                              + PLANAR_TAIL, "(batch,)"),
    "bound_sum": (FB, bound("np.sum(bernoulli_log_prob(data, logits) + log_prior - log_q0 + total)"), "summed"),
    "bound_no_log_det": (FB, bound("np.mean(bernoulli_log_prob(data, logits) + log_prior - log_q0)"), "missing"),
    "bound_minus_log_det": (FB, bound("np.mean(bernoulli_log_prob(data, logits) + log_prior - log_q0 - total)"),
                            "subtracted"),
    "bound_plus_q0": (FB, bound("np.mean(bernoulli_log_prob(data, logits) + log_prior + log_q0 + total)"), "added"),
    "bound_prior_at_z0": (FB, bound(CORRECT, prior=PRIOR.replace("z **", "z0 **")), "evaluated at z_0"),
    "bound_q0_no_constant": (FB, bound(CORRECT).replace(" - HALF_LOG_2PI, axis=-1)\nz, total", ", axis=-1)\nz, total"),
                             "log(2 pi)"),
    "bound_decodes_z0": (FB, bound(CORRECT, decode=DECODE.replace(", z)", ", z0)")), "decode z_K"),
    "bound_flows_reversed": (FB, bound(CORRECT, loop=FLOWS_LOOP.replace("in flow_params", "in flow_params[::-1]")),
                             "in order"),
    "bound_second_sample": (FB, bound(CORRECT).replace("logits = ", "sample_latent_variables_from_posterior("
                                                       "encoder_output)\nlogits = "), "draws 2 samples"),
}
FLOW_ALTERNATIVES = {
    "planar_keywords": (P, "u_hat = constrain_u(u=u, w=w)\nh = np.tanh(np.dot(z, w) + b)\n"
                           "log_det = np.log(np.abs(1 + (1 - h ** 2) * np.dot(w, u_hat)))\n" + PLANAR_TAIL),
    "bound_keywords": (FB, bound(CORRECT, loop=FLOWS_LOOP.replace("planar_flow(z, u, w, b)",
                                                                  "planar_flow(z, u=u, w=w, b=b)"))),
    "constrain_softplus_by_hand": (C, WU + "softplus = np.maximum(wu, 0) + np.log1p(np.exp(-np.abs(wu)))\n"
                                          "return u + (softplus - 1 - wu) / np.sum(w ** 2) * w"),
    "planar_with_psi": (P, "u_hat = constrain_u(u, w)\nh = np.tanh(z @ w + b)\npsi = (1 - h ** 2)[:, None] * w\n"
                           "return z + np.outer(h, u_hat), np.log(np.abs(1 + psi @ u_hat))"),
    "bound_with_scipy_norm": (FB, "from autograd.scipy.stats import norm\n"
                                  "q = neural_net_predict(rec_params, data)\nmean, log_std = np.split(q, 2, axis=-1)\n"
                                  "z = sample_latent_variables_from_posterior(q)\n"
                                  "bound = -np.sum(norm.logpdf(z, mean, np.exp(log_std)), axis=1)\n"
                                  "for params in flow_params:\n    z, log_det = planar_flow(z, *params)\n"
                                  "    bound = bound + log_det\n"
                                  "bound = bound + np.sum(norm.logpdf(z), axis=1)\n"
                                  "return np.mean(bound + bernoulli_log_prob(data, neural_net_predict(gen_params, z)))"),
}


def source_with(replacements, part="vae"):
    """The reference of ``part`` (solution/PART.py) with some functions' regions replaced."""
    with open(os.path.join(ROOT, "solution", f"{part}.py")) as f:
        source = f.read()
    regions = solution_regions(source)
    for function, code in replacements.items():
        region = regions[PARTS[part].index(function)]
        source = source.replace(region, textwrap.indent(code.strip("\n"), "    ") + "\n", 1)
    return source


def write(tmp_path, name, text):
    path = os.path.join(str(tmp_path), name)
    with open(path, "w") as f:
        f.write(text)
    return path


def stub_source():
    with open(ASSIGNMENT) as f:
        return f.read()


def stub_with(function, code):
    """The student stub with one function's body replaced by ``code`` (for hostile files)."""
    source = stub_source()
    marker = f"def {function}("
    start = source.index(marker)
    stub = "    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    at = source.index(stub, start)
    return source[:at] + textwrap.indent(textwrap.dedent(code).strip("\n"), "    ") + "\n" + source[at + len(stub):]
