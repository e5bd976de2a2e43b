"""The checks of flows.py, the optional part: constrain_u, planar_flow, flow_lower_bound.

Same scheme as checks.py, with the same machinery (grader/registry.py): inputs from a fixed seed, numbers from the student's process,
judged here against expected values the grader computed itself, with the gradients also
compared with finite differences. planar_flow runs with a stand-in constrain_u, and
flow_lower_bound with stand-ins for the networks' parts and for planar_flow
(grader/stand_ins.py), so that each function is judged on its own. Nothing here computes
a planar flow.
"""
import numpy as np

from .checks import (build_lower_bound, decoder_input, gradient_answer, judge_lower_bound_gradient,
                     judge_lower_bound_value, one_sample_per_image)
from .registry import (FD_RTOL, FD_STEP, HIDDEN_FROM_AUTOGRAD, Check, Failed, Named, answer, call_failed, close, differs,
                       name_mistake, only_original, register, shape_of, with_mistakes)
from .stand_ins import flow_stand_in

CONSTRAIN, PLANAR, FLOW_BOUND = FLOW_FUNCTIONS = ["constrain_u", "planar_flow", "flow_lower_bound"]


def u_and_w(rs, latent, w_dot_u):
    """u and w of shape (L,) with w . u equal to ``w_dot_u``."""
    w, u = rs.randn(latent), rs.randn(latent)
    return u + (w_dot_u - w @ u) * w / (w @ w), w


def planar_inputs(rs, batch, latent, w_dot_u):
    u, w = u_and_w(rs, latent, w_dot_u)
    return [rs.randn(batch, latent), u, w, 0.5 * rs.randn(1)]


# the arguments of each function for one case: (L, w . u) for constrain_u, (batch, L, w . u) for planar_flow
MAKE = {CONSTRAIN: lambda rs, latent, w_dot_u: list(u_and_w(rs, latent, w_dot_u)), PLANAR: planar_inputs}
OUTPUTS = {CONSTRAIN: 1, PLANAR: 2}  # how many arrays the function returns
REPLACE = {CONSTRAIN: [], PLANAR: [CONSTRAIN]}  # helpers the grader's stand-ins replace during the call


def output_shapes(function, arrays):
    """The shapes of what ``function`` returns for these arguments: u_hat (L,); z_new (batch, L), log_det (batch,)."""
    if function == CONSTRAIN:
        return [arrays[0].shape]
    return [arrays[0].shape, arrays[0].shape[:1]]


def _call(check, suffix, names, **extra):
    call = {"id": check.call_id(suffix), "function": check.function, "args": [{"array": n} for n in names],
            "replace": REPLACE[check.function], "kind": "value"}
    if OUTPUTS[check.function] > 1:
        call["tuple"] = OUTPUTS[check.function]
    return dict(call, **extra)


def _store(check, inputs, i, arrays):
    names = [f"{check.key}/a{i}_{j}" for j in range(len(arrays))]
    inputs.update(zip(names, arrays))
    return names


def build_flow_values(check, rs, cases):
    """cases: the shape arguments of MAKE[function], one call each."""
    inputs, calls = {}, []
    for i, case in enumerate(cases):
        calls.append(_call(check, f"case{i}", _store(check, inputs, i, MAKE[check.function](rs, *case))))
    return inputs, calls


def build_flow_gradient(check, rs, cases, wrt):
    """For every case and argument in ``wrt``: autograd's gradient of sum_i sum(weights_i * output_i)
    with respect to that argument, and the outputs at the argument moved by +-h along a direction."""
    inputs, calls = {}, []
    for i, case in enumerate(cases):
        arrays = MAKE[check.function](rs, *case)
        names = _store(check, inputs, i, arrays)
        weights = [f"{check.key}/w{i}_{j}" for j in range(OUTPUTS[check.function])]
        inputs.update(zip(weights, (rs.randn(*shape) for shape in output_shapes(check.function, arrays))))
        for a in wrt:
            inputs[f"{check.key}/d{i}_{a}"] = direction = rs.randn(*arrays[a].shape)
            calls.append(_call(check, f"grad{i}_{a}", names, kind="value_and_vjp", wrt=a,
                               weights=weights if len(weights) > 1 else weights[0]))
            for sign, label in ((1, "plus"), (-1, "minus")):
                moved = list(names)
                moved[a] = f"{check.key}/a{i}_{a}_{label}"
                inputs[moved[a]] = arrays[a] + sign * FD_STEP * direction
                calls.append(_call(check, f"{label}{i}_{a}", moved))
    return inputs, calls


def outputs_of(check, results, suffix):
    keys = ["out"] if OUTPUTS[check.function] == 1 else [f"out{j}" for j in range(OUTPUTS[check.function])]
    got = answer(check, results, suffix, *keys)
    return [got] if len(keys) == 1 else got


def used_constrain_u(check, results, suffix):
    if REPLACE[check.function]:
        calls = results[check.call_id(suffix)][1].get("calls_constrain_u")
        if calls is not None and float(calls) == 0:
            raise Named("planar_flow never calls constrain_u: move z along the constrained u that constrain_u(u, w) "
                         "returns, in z_new and in the log-determinant, so that the flow stays invertible")


# ------------------------------------------------------------------ constrain_u
CONSTRAIN_MISTAKES = [
    ("unchanged", "you return u unchanged: u_hat = u + (m(w . u) - w . u) * w / |w|^2 moves u so that w . u_hat >= -1"),
    ("no_minus_one", "m(a) is -1 + log(1 + e^a): the -1 is missing"),
    ("norm_not_squared", "divide by w . w = |w|^2, not by |w|")]


def judge_constrain(check, results, expected, stability=False):
    for i, (latent, w_dot_u) in enumerate(check.params["cases"]):
        (got,) = outputs_of(check, results, f"case{i}")
        u, w = check.inputs[f"{check.key}/a{i}_0"], check.inputs[f"{check.key}/a{i}_1"]
        if stability and got.shape == u.shape and not np.all(np.isfinite(got)):
            raise Failed(f"u_hat is not finite when w . u = {w_dot_u:g}: e^a overflows in log(1 + e^a); compute "
                         f"it stably, as in bernoulli_log_prob (np.logaddexp(0, a))",
                         mistake="u_hat overflows at large w . u: compute log(1 + e^a) stably")
        shape_of(got, u.shape, f"u_hat for u and w of shape {u.shape}",
                 [((), "return the vector u_hat, not the number w . u_hat")])
        if float(w @ got) < -1 - 1e-9:
            raise Failed(f"w . u_hat = {float(w @ got):.6g} for w . u = {w_dot_u:g}: below -1, so the flow is not "
                         f"invertible; u_hat must satisfy w . u_hat = m(w . u) > -1",
                         mistake="w . u_hat falls below -1: the flow is not invertible")
        if not close(got, expected[f"case{i}"]):  # at large |w . u| several mistakes give the same u_hat
            name_mistake(got, with_mistakes(expected, f"case{i}"), [] if stability else CONSTRAIN_MISTAKES,
                         f"u_hat at w . u = {w_dot_u:g}")
    return True, ""


# ------------------------------------------------------------------ planar_flow
PLANAR_MISTAKES = [
    ("u_not_hat", "your flow uses u where u_hat, the u that constrain_u returns, belongs"),
    ("u_in_log_det", "the log-determinant uses w . u where w . u_hat belongs"),
    ("no_derivative", "the log-determinant is missing tanh'(a) = 1 - tanh(a)^2: psi(z) = (1 - tanh(a)^2) * w"),
    ("tanh_not_derivative", "the log-determinant has tanh(a) where its derivative 1 - tanh(a)^2 belongs"),
    ("no_log", "return the log of |1 + psi(z) . u_hat|, not the determinant itself")]


def judge_planar(check, results, expected):
    for i, (batch, latent, _) in enumerate(check.params["cases"]):
        used_constrain_u(check, results, f"case{i}")
        z_new, log_det = outputs_of(check, results, f"case{i}")
        shape_of(z_new, (batch, latent), f"z_new for z of shape {(batch, latent)}",
                 [((latent,), "return one moved z per row of the batch")])
        shape_of(log_det, (batch,), f"log_det for z of shape {(batch, latent)}",
                 [((batch, 1), "one log-determinant per row, shape (batch,): b has shape (1,), so z @ w + b "
                               "already has shape (batch,)"),
                  ((batch, latent), "one log-determinant per row (a number), not per latent dimension"),
                  ((), "return one log-determinant per row of the batch")])
        for j, (got, what) in enumerate(((z_new, "z_new"), (log_det, "log_det"))):
            if not close(got, expected[f"case{i}/{j}"]):
                name_mistake(got, with_mistakes(expected, f"case{i}/{j}"), PLANAR_MISTAKES, what)
    return True, ""


# ------------------------------------------------------------------ gradients of both
def judge_flow_gradient(check, results, expected):
    what = check.function
    for i, _ in enumerate(check.params["cases"]):
        for a in check.params["wrt"]:
            used_constrain_u(check, results, f"grad{i}_{a}")
            grad, want = gradient_answer(check, results, f"grad{i}_{a}", what), expected[f"grad{i}_{a}"]
            argument = ARGUMENT_NAMES[what][a]
            shape_of(grad, want.shape, f"the gradient of {what} with respect to {argument}")
            weights = [check.inputs[f"{check.key}/w{i}_{j}"] for j in range(OUTPUTS[what])]
            plus, minus = (outputs_of(check, results, f"{label}{i}_{a}") for label in ("plus", "minus"))
            fd = sum(np.sum(w * (p - m)) for w, p, m in zip(weights, plus, minus)) / (2 * FD_STEP)
            analytic = float(np.sum(grad * check.inputs[f"{check.key}/d{i}_{a}"]))
            if not abs(fd - analytic) <= FD_RTOL * (1 + abs(fd)):
                raise Failed(f"autograd's gradient of {what} with respect to {argument} ({analytic:.6g} along a random "
                             f"direction) does not match its finite differences ({fd:.6g}): autograd cannot see part "
                             f"of the computation (plain numpy instead of autograd.numpy, in-place writes, float())",
                             mistake=HIDDEN_FROM_AUTOGRAD)
            if not close(grad, want, rtol=1e-5, atol=1e-7):
                raise Failed(differs(grad, want, f"the gradient of {what} with respect to {argument}",
                                     1e-5, 1e-7))
    return True, ""


ARGUMENT_NAMES = {CONSTRAIN: ["u", "w"], PLANAR: ["z", "u", "w", "b"]}


# ------------------------------------------------------------------ flow_lower_bound
FLOW_BOUND_MISTAKES = [
    ("sum", "you summed over the batch; return the mean over the rows of data"),
    ("no_log_det", "the log-determinants are missing: add the sum of every flow's log_det"),
    ("minus_log_det", "you subtracted the log-determinants; log q_K(z_K) = log q_0(z_0) - sum log_det, so the bound "
                      "adds them"),
    ("prior_at_z0", "the prior log N(z; 0, I) is evaluated at z_0; evaluate it at z_K, the output of the last flow"),
    ("q0_at_zK", "log q_0 is evaluated at z_K; evaluate it at z_0, the sample before the flows"),
    ("no_prior", "the prior term log N(z_K; 0, I) is missing"),
    ("plus_q0", "you added log q_0(z_0|x); the bound subtracts it"),
    ("q0_no_constant", "log q_0(z_0|x) is missing its -log(2 pi) / 2 per latent dimension"),
    ("prior_no_constant", "log N(z_K; 0, I) is missing its -log(2 pi) / 2 per latent dimension"),
    ("q0_variance", "log q_0 divides (z_0 - mean)^2 by 2 s where 2 s^2 belongs (s = exp(log_std))")]


def judge_flow_bound_value(check, results, expected):
    return judge_lower_bound_value(check, results, expected, FLOW_BOUND_MISTAKES)


def judge_flow_bound_parts(check, results, expected):
    header, arrays = results[check.call_id("main")]
    if header.get("status") != "ok":
        raise call_failed(header)
    flows = int(arrays["counts"][4])
    encoder_output, z = check.inputs[f"{check.key}/e0"], check.inputs[f"{check.key}/z"]
    if not one_sample_per_image(arrays, check.params["batch"], check.function):
        raise Named("flow_lower_bound never calls sample_latent_variables_from_posterior: draw z_0 with it, "
                    "one per image")
    if not close(arrays["sampler_input"], encoder_output):
        raise Named("the sampler does not get the encoder's output, neural_net_predict(rec_params, data)")
    count = len(check.nets["flows"]) // 3
    if flows != count:
        raise Failed(f"flow_lower_bound calls planar_flow {flows} times for {count} flows; apply each flow once, in order",
                     mistake="planar_flow is not applied once per flow")
    z0 = z
    for k in range(count):
        u, w, b = (check.inputs[n] for n in check.nets["flows"][3 * k:3 * k + 3])
        if not close(arrays[f"flow{k}_u"], u):
            raise Failed(f"call {k + 1} of planar_flow does not get flow {k + 1}'s parameters: apply flow_params in order",
                         mistake="the flows are not applied in order")
        if not close(arrays[f"flow{k}_z"], z):
            raise Named(f"flow {k + 1} does not get the output of flow {k}: feed each flow's z_new into the next"
                        if k else "the first flow does not get z_0, the sample from your sampler")
        z = flow_stand_in(z, u, w, b)[0]
    latent = z.shape[1]
    decoded = decoder_input(arrays, latent)
    if decoded is None or not close(decoded, z):
        raise Named("the decoder gets z_0; decode z_K, the output of the last flow"
                    if count and decoded is not None and close(decoded, z0) else
                    "the decoder, neural_net_predict(gen_params, z_K), does not get z_K")
    if "bernoulli_targets" not in arrays or not (close(arrays["bernoulli_targets"], check.inputs[f"{check.key}/data"])
                                                 and close(arrays["bernoulli_logits"], check.inputs[f"{check.key}/l0"])):
        raise Named("bernoulli_log_prob should be called once, with (data, the decoder's output for z_K)")
    return True, ""


FLOW_BUILDERS = {
    "constrain_values": build_flow_values, "constrain_stability": build_flow_values,
    "constrain_gradient": build_flow_gradient,
    "planar_values": build_flow_values, "planar_gradient": build_flow_gradient,
    "flow_bound_value": build_lower_bound, "flow_bound_parts": build_lower_bound,
    "flow_bound_gradient": build_lower_bound,
}
FLOW_JUDGES = {
    "constrain_values": judge_constrain,
    "constrain_stability": lambda check, results, expected: judge_constrain(check, results, expected, stability=True),
    "constrain_gradient": judge_flow_gradient,
    "planar_values": judge_planar, "planar_gradient": judge_flow_gradient,
    "flow_bound_value": judge_flow_bound_value, "flow_bound_parts": judge_flow_bound_parts,
    "flow_bound_gradient": judge_lower_bound_gradient,
}


def public_flow_checks(variant=None):
    """flows.py's checks. The optional part is written for the original assignment's conventions only."""
    only_original(variant)
    return [
        Check("values, and w . u_hat >= -1", CONSTRAIN, "constrain_values", 6, seed=201,
              cases=[(3, 0.7), (5, -1.5), (2, -20.0), (50, 3.0)]),
        Check("stable when w . u is large", CONSTRAIN, "constrain_stability", 2, seed=202, cases=[(4, 800.0), (4, -800.0)]),
        Check("gradient with respect to u and w", CONSTRAIN, "constrain_gradient", 4, seed=203,
              cases=[(4, -2.0)], wrt=[0, 1]),
        Check("values of z_new and log_det", PLANAR, "planar_values", 10, seed=204,
              cases=[(1, 3, 0.5), (6, 50, -0.8)]),
        Check("gradient with respect to z, u, w and b", PLANAR, "planar_gradient", 8, seed=205,
              cases=[(4, 3, 1.0)], wrt=[0, 1, 2, 3]),
        Check("value: mean over the batch of the bound with flows", FLOW_BOUND, "flow_bound_value", 9, seed=206,
              batch=4, latent=3, width=5, flows=3),
        Check("value without flows", FLOW_BOUND, "flow_bound_value", 4, seed=207, batch=3, latent=2, width=4, flows=0),
        Check("uses the sampler once and the flows in order, and decodes z_K", FLOW_BOUND, "flow_bound_parts", 8,
              seed=208, batch=3, latent=3, width=4, flows=3),
        Check("gradient with respect to every parameter", FLOW_BOUND, "flow_bound_gradient", 8, seed=209,
              batch=3, latent=2, width=3, flows=2),
    ]


register("flows", FLOW_FUNCTIONS, FLOW_BUILDERS, FLOW_JUDGES, public_flow_checks)
