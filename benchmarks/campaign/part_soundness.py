"""Part 1: random networks x activations x formats x methods, checked against independent ground truth."""

from __future__ import annotations

import json
import os
import time
from fractions import Fraction

import numpy as np

import formats
import props as P
import truth
from nets import Net, act_name, random_act, random_net
from runner import error_issues, success_issues

PART = "p1-soundness"
EXT = {"npz": ".npz", "onnx": ".onnx", "torchscript": ".pt", "statedict": ".pt", "nnet": ".nnet", "mat": ".mat"}
# activation families cycled so that every one is covered even in --quick
FAMILIES = [("relu",), ("leaky", -2.0), ("tanh",), ("groupsort", 2), ("sigmoid",), ("leaky", 0.01),
            ("identity",), ("groupsort", 3), ("leaky", -1.0), "mixed", ("leaky", 2.0), ("relu",), ("leaky", 0.5),
            ("leaky", -0.5), ("leaky", 0.0), ("leaky", 1.0), "mixed"]
CHEAP_METHODS = ("naive", "exact", "sampled", "auto")
REL = 1e-9  # relative slack for float64 round-off in comparisons of bounds


def _issues_to_failures(ctx, part, issues, run, files, cls_prefix, extra=None):
    for cat, detail in issues:
        ctx.camp.fail(part, cat, f"{cls_prefix}:{detail.split(':')[0][:50]}", detail, run, files, extra)


def _fmt_q(v) -> str:
    return f"{float(v):.17g}"


# =========================================================================================== nets
def make_net(ctx, i: int):
    rng = np.random.default_rng([ctx.seed, 1, i])
    fam = FAMILIES[i % len(FAMILIES)]
    r = rng.random()
    n_in = 1 if r < 0.3 else (int(rng.integers(2, 4)) if r < 0.75 else int(rng.integers(4, 7)))
    dyadic = (i % 5 in (2, 4))
    if dyadic and n_in > 3:
        n_in = int(rng.integers(1, 4))
    if fam == "mixed":
        net = random_net(rng, n_in=n_in, mixed=True, dyadic=dyadic)
    else:
        net = random_net(rng, n_in=n_in, act=fam, mixed=False, dyadic=dyadic)
    return rng, net


def choose_format(net: Net, i: int, rng) -> str:
    cands = [f for f in formats.FORMATS if formats.can_write(net, f)]
    if "nnet" in cands and i % 2 == 0:  # ReLU-only nets are rare: give the .nnet format its share
        return "nnet"
    # prefer the rarer formats in turn
    return cands[(i // len(FAMILIES) + i) % len(cands)]


# =========================================================================================== main
def run(ctx) -> None:
    import verification

    methods = sorted(verification.available_methods())
    ctx.camp.notes.append(f"lipschitz methods: {', '.join(methods)}")
    prof = ctx.profile
    for i in range(prof["p1_nets"]):
        if ctx.out_of_time(PART):
            ctx.camp.skipped[PART] += prof["p1_nets"] - i
            break
        rng, net = make_net(ctx, i)
        fmt = choose_format(net, i, rng)
        d = os.path.join(ctx.work, f"p1_{i:04d}")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"net_{fmt}{EXT[fmt]}")
        domain = None
        if fmt == "nnet":
            domain = (-np.full(net.in_dim, 50.0), np.full(net.in_dim, 50.0))
        stored, extra = formats.write(net, fmt, path, rng, domain)
        model = {"path": path, "fmt": fmt, "net": stored, "extra": extra, "domain": domain, "i": i}
        ctx.models.append(model)
        ctx.camp.tally("p1 nets by activation", ",".join(sorted({act_name(a) for a in stored.acts})))
        ctx.camp.tally("p1 nets by format", fmt)
        try:
            t = time.time()
            check_lipschitz(ctx, model, rng, methods, full_sweep=(i % prof["sdp_every"] == 0))
            t = _lap(ctx, "lipschitz", t)
            check_local(ctx, model, rng)
            t = _lap(ctx, "local-lipschitz", t)
            box = check_verify(ctx, model, rng, prof["props_per_net"])
            t = _lap(ctx, "verify", t)
            if box is not None and i % prof["api_every"] == 0:
                check_api_bounds(ctx, model, box)
                _lap(ctx, "api bounds", t)
        except Exception as exc:  # a campaign bug must not hide the other results
            import traceback

            ctx.camp.notes.append(f"harness error on p1 net {i}: {type(exc).__name__}: {exc}")
            traceback.print_exc()


def _lap(ctx, what: str, t0: float) -> float:
    t = time.time()
    ctx.camp.tally("p1 seconds by activity (truth + CLI)", what, round(t - t0, 2))
    return t


# =========================================================================================== Lipschitz
def lipschitz_truth(stored: Net, norm, c, rng):
    lo_s = truth.sampled_lipschitz(stored, norm, c, rng, n=1500 if stored.in_dim > 1 else 600)
    up, how = truth.independent_upper(stored, norm, c)
    ex = None
    if stored.in_dim == 1 and stored.pwl:
        ex = truth.Pieces1D(stored).lipschitz_sq(norm, c)  # squared for l2
    pat = None
    if truth.all_patterns_realised(stored):
        pat = up / (1 + 1e-9) if how == "max over activation patterns" else None
    return lo_s, up, how, ex, pat


def _exact_value(ex, norm) -> float:
    return float(ex) ** 0.5 if norm == 2 else float(ex)


def _ge_exact(v: float, ex: Fraction, norm, rel=1e-12) -> bool:
    """v >= exact constant (ex squared for l2), allowing a relative ``rel`` for the final rounding."""
    fv = Fraction(v)
    if norm == 2:
        return fv * fv >= ex * (1 - 2 * Fraction(rel))
    return fv >= ex * (1 - Fraction(rel))


def _le_exact(v: float, ex: Fraction, norm, rel=1e-12) -> bool:
    fv = Fraction(v)
    if norm == 2:
        return fv * fv <= ex * (1 + 2 * Fraction(rel))
    return fv <= ex * (1 + Fraction(rel))


def check_lipschitz(ctx, model, rng, methods, full_sweep: bool, norms=None, outputs=None, part=PART,
                    only=None, require_cert=()):
    stored: Net = model["net"]
    path = model["path"]
    norm = norms[0] if norms else (2 if rng.random() < 0.5 else "inf")
    r = rng.random()
    if outputs is not None:
        out_arg = outputs
    elif r < 0.65 or stored.out_dim == 1:
        out_arg = None
    elif r < 0.85:
        out_arg = str(int(rng.integers(stored.out_dim)))
    else:
        i, j = rng.choice(stored.out_dim, size=2, replace=False)
        out_arg = f"{i}-{j}"
    c = None
    if out_arg is not None:
        c = np.zeros(stored.out_dim)
        if "-" in out_arg:
            i, j = (int(t) for t in out_arg.split("-"))
            c[i], c[j] = 1.0, -1.0
        else:
            c[int(out_arg)] = 1.0
    t0 = time.time()
    lo_s, up, how, ex, pat = lipschitz_truth(stored, norm, c, rng)
    ctx.camp.tally("p1 seconds by activity (truth + CLI)", "lipschitz: ground truth", round(time.time() - t0, 2))
    if lo_s > up:
        ctx.camp.notes.append(f"harness: sampled {lo_s} > independent upper {up} on {path}")
    todo = only or [m for m in methods if full_sweep or m in CHEAP_METHODS]
    if "auto" not in todo and not only:
        todo = [*todo, "auto"]
    facts = {"net": stored.describe(), "norm": norm, "output": out_arg, "sampled_lower(ours)": lo_s,
             "independent_upper(ours)": f"{up} ({how})",
             "exact(ours, 1-D)": None if ex is None else _exact_value(ex, norm),
             "pattern_max(ours, all patterns realised)": pat}
    for m in todo:
        argv = ["lipschitz", path, "--method", m, "--norm", str(norm), "--json", *model["extra"]]
        if out_arg is not None:
            argv += ["--output", out_arg]
        timeout = 90 if m not in CHEAP_METHODS else 45
        run = ctx.runner.run(argv, timeout=timeout)
        ctx.camp.case(part)
        ctx.camp.tally("CLI seconds by command", f"lipschitz --method {m}", round(run.seconds, 2))
        files = [path]
        tag = f"lipschitz-{m}"
        if run.rc == 2 and not run.timed_out:
            errs = [ln for ln in run.stderr.splitlines() if ln.strip() and not ln.startswith("verification: note:")]
            first = (errs or [""])[0]
            ctx.camp.tally("lipschitz refusals (method: message)", f"{m}: {first[first.find('error:'):][:90]}")
            if any(k in first for k in ("returned status", "failed on the", "SolverError")):
                ctx.camp.fail(part, "wrong_exit", f"{tag}:solver failure reported as bad input (exit 2)",
                              f"`lipschitz --method {m}` exits 2 (bad input) on a valid network because its solver "
                              f"failed; cli.md: exit 1 = could not certify, 2 = bad input: {first[:150]}",
                              run, files, facts)
            _issues_to_failures(ctx, part, error_issues(run, timeout), run, files, tag, facts)
            if (m in ("naive", "sampled", "auto") or m in require_cert) and not _loader_refuses(ctx, model):
                ctx.camp.fail(part, "wrong_exit", f"{tag}:refuses a valid network",
                              f"`lipschitz --method {m}` refused a valid network ({stored.describe()}): {first[:150]}",
                              run, files, facts)
            continue
        iss = success_issues(run, {0, 1}, timeout)
        if iss:
            _issues_to_failures(ctx, part, iss, run, files, tag, facts)
            if any(c_ in ("hang", "traceback") for c_, _ in iss):
                continue
        obj = run.json()
        if not isinstance(obj, dict) or "value" not in obj:
            ctx.camp.fail(part, "wrong_exit", f"{tag}:no JSON", f"no JSON object on stdout (exit {run.rc})", run,
                          files, facts)
            continue
        v = obj.get("value")
        cert = bool(obj.get("certified"))
        lower_kind = (obj.get("details") or {}).get("kind") == "lower_bound"
        want_rc = 0 if (cert or lower_kind) else 1
        if run.rc != want_rc:
            ctx.camp.fail(part, "wrong_exit", f"{tag}:exit {run.rc} for certified={cert}",
                          f"exit {run.rc} but certified={cert}, kind={'lower_bound' if lower_kind else None}",
                          run, files, facts)
        if v is None and not cert and run.rc == 1 and obj.get("reason"):  # the solver failed: no bound, exit 1
            ctx.camp.tally("lipschitz solver failures (exit 1, no bound)", f"{m}: {str(obj['reason'])[:70]}")
            if m in require_cert:
                ctx.camp.fail(part, "wrong_exit", f"{tag}:no certified bound for a valid network",
                              f"`lipschitz --method {m}` gave no bound (exit 1) for a valid network", run, files, facts)
            continue
        if not isinstance(v, (int, float)) or v != v:
            ctx.camp.fail(part, "wrong_answer", f"{tag}:non-numeric value", f"value {v!r}", run, files, facts)
            continue
        v = float(v)
        used = obj.get("method", m)
        if not cert and not lower_kind:
            ctx.camp.tally("lipschitz not certified (exit 1)", m)
            if m in require_cert:
                ctx.camp.fail(part, "wrong_exit", f"{tag}:no certified bound for a valid network",
                              f"`lipschitz --method {m}` printed no certified bound (exit {run.rc}) for a valid "
                              f"network ({stored.describe()})", run, files, facts)
        key = f"{tag}({used})" if m == "auto" else tag
        if cert:
            ctx.camp.tally("lipschitz certified answers", key)
            if lo_s > v * (1 + REL):
                ctx.camp.fail(part, "unsound_bound", f"{key}:certified < sampled lower ({_actkind(stored)})",
                              f"certified {v!r} < our sampled lower bound {lo_s!r} (l{norm}, output {out_arg}, "
                              f"{stored.describe()})", run, files, facts)
            elif lo_s > v:
                ctx.camp.tally("round-off level (<1e-9 rel) bound violations", key)
            if ex is not None and not _ge_exact(v, ex, norm) and not lo_s > v * (1 + REL):
                ctx.camp.fail(part, "unsound_bound", f"{key}:certified < exact 1-D constant",
                              f"certified {v!r} < exact constant {_exact_value(ex, norm)!r} (1-input net)",
                              run, files, facts)
        if used == "exact" and cert:
            if ex is not None:
                if not (_ge_exact(v, ex, norm, 1e-9) and _le_exact(v, ex, norm, 1e-9)):
                    ctx.camp.fail(part, "wrong_answer", "lipschitz-exact:differs from exact 1-D constant",
                                  f"--method exact printed {v!r}, exact constant is {_exact_value(ex, norm)!r}",
                                  run, files, facts)
            elif pat is not None and abs(v - pat) > 1e-9 * max(pat, 1e-300):
                ctx.camp.fail(part, "wrong_answer", "lipschitz-exact:differs from max over patterns",
                              f"--method exact printed {v!r}, max over all (realised) patterns is {pat!r}",
                              run, files, facts)
        if lower_kind or used == "sampled":
            if v > up:
                ctx.camp.fail(part, "unsound_bound", f"{key}:lower bound above true constant",
                              f"sampled (lower bound) {v!r} > our independent upper bound {up!r} ({how})",
                              run, files, facts)
            elif ex is not None and not _le_exact(v, ex, norm, 1e-9):
                ctx.camp.fail(part, "unsound_bound", f"{key}:lower bound above exact 1-D constant",
                              f"sampled (lower bound) {v!r} > exact constant {_exact_value(ex, norm)!r}",
                              run, files, facts)


def _loader_refuses(ctx, model) -> bool:
    """Does the loader refuse this (valid) file?  Refusing is allowed by the promise ("when a loader
    cannot be sure, it refuses"); it is tallied, and then a command's refusal is not its own fault."""
    key = model["path"]
    cache = ctx.__dict__.setdefault("_loader_cache", {})
    if key not in cache:
        r = ctx.runner.run(["info", model["path"], *model["extra"]], timeout=60)
        cache[key] = r.rc == 2
        if r.rc == 2:
            first = (r.stderr.strip().splitlines() or [""])[0]
            ctx.camp.tally("valid model files refused by the loader (allowed; not counted as failures)",
                           f"{model['fmt']}: {first[first.find('error:'):][:110]}")
    return cache[key]


def _actkind(net: Net) -> str:
    return "+".join(sorted({act_name(a).split("(")[0] for a in net.acts}))


# =========================================================================================== local Lipschitz
def check_local(ctx, model, rng, part=PART, eps=None, center=None):
    stored: Net = model["net"]
    path = model["path"]
    n = stored.in_dim
    if center is None:
        center = rng.normal(size=n) * float(rng.choice([0.1, 1.0]))
    eps = eps if eps is not None else float(rng.choice([1e-3, 0.1, 1.0]))
    lo, hi = center - eps, center + eps
    if model.get("domain") is not None:
        lo, hi = np.maximum(lo, model["domain"][0]), np.minimum(hi, model["domain"][1])
    out = int(rng.integers(stored.out_dim)) if (stored.out_dim > 1 and rng.random() < 0.3) else None
    relax = str(rng.choice(["crown", "crown", "recurjac", "ibp"]))
    bab = stored.pwl and rng.random() < 0.25
    center_txt = ",".join(repr(float(v)) for v in center)
    center_arg = f"--center={center_txt}"
    r_c = rng.random()
    if r_c < 0.15:  # the documented file forms of --center
        cpath = os.path.join(os.path.dirname(path), "center.npy")
        np.save(cpath, np.asarray(center, dtype=np.float64))
        center_arg = f"--center={cpath}"
    elif r_c < 0.3:
        cpath = os.path.join(os.path.dirname(path), "center.txt")
        with open(cpath, "w") as fh:
            fh.write(" ".join(repr(float(v)) for v in center) + "\n")
        center_arg = f"--center={cpath}"
    argv = ["local-lipschitz", path, center_arg, "--eps", repr(eps), "--json", "--relaxation", relax,
            *model["extra"]]
    if out is not None:
        argv += ["--output", str(out)]
    if bab:
        argv += ["--bab", "--timeout", "5"]
    samp = truth.local_sampled(stored, lo, hi, out, rng, n=800)
    c = None
    if out is not None:
        c = np.zeros(stored.out_dim)
        c[out] = 1.0
    up_glob, how = truth.independent_upper(stored, "inf", c)
    if out is None:  # l-inf local constant max_j ||J_j||_1 <= max_j (global bound of output j)
        up_glob = max(truth.independent_upper(stored, "inf", np.eye(stored.out_dim)[j])[0]
                      for j in range(stored.out_dim))
    ex = None
    if n == 1 and stored.pwl:
        pcs = truth.Pieces1D(stored)
        lo_q, hi_q = Fraction(float(lo[0])), Fraction(float(hi[0]))
        ex = pcs.lipschitz_sq("inf", c, lo_q, hi_q)
    facts = {"net": stored.describe(), "center": center_txt, "eps": eps, "output": out,
             "sampled_lower(ours)": samp, "independent_global_upper(ours)": up_glob,
             "exact_local(ours,1-D)": None if ex is None else float(ex)}
    run = ctx.runner.run(argv, timeout=40)
    ctx.camp.case(part)
    if center_arg.startswith("--center=/"):
        files_extra = [center_arg.split("=", 1)[1]]
    else:
        files_extra = []
    ctx.camp.tally("CLI seconds by command", f"local-lipschitz{' --bab' if bab else ''}", round(run.seconds, 2))
    files = [path, *files_extra]
    if run.rc == 2 and not run.timed_out:
        first = (run.stderr.strip().splitlines() or [""])[0]
        ctx.camp.tally("local-lipschitz refusals", f"{_actkind(stored)}: {first[first.find('error:'):][:80]}")
        _issues_to_failures(ctx, part, error_issues(run, 40), run, files, "local-lipschitz", facts)
        return
    iss = success_issues(run, {0}, 40)
    if iss:
        _issues_to_failures(ctx, part, iss, run, files, f"local-lipschitz-{relax}", facts)
        if any(c_ in ("hang", "traceback") for c_, _ in iss):
            return
    obj = run.json()
    if not isinstance(obj, dict) or "value" not in obj:
        ctx.camp.fail(part, "wrong_exit", "local-lipschitz:no JSON", f"no JSON (exit {run.rc})", run, files, facts)
        return
    v, low = float(obj["value"]), obj.get("lower")
    tag = f"local-lipschitz-{relax}{'+bab' if bab else ''}"
    if samp > v * (1 + REL):
        ctx.camp.fail(part, "unsound_bound", f"{tag}:certified < sampled ({_actkind(stored)})",
                      f"local certified {v!r} < our sampled lower {samp!r} ({stored.describe()}, eps {eps})",
                      run, files, facts)
    elif ex is not None and Fraction(v) < ex * (1 - Fraction(1e-12)):
        ctx.camp.fail(part, "unsound_bound", f"{tag}:certified < exact 1-D local constant",
                      f"local certified {v!r} < exact local constant {float(ex)!r}", run, files, facts)
    if isinstance(low, (int, float)):
        if low > v * (1 + REL):
            ctx.camp.fail(part, "wrong_answer", f"{tag}:lower > certified value",
                          f"printed lower {low!r} > printed certified value {v!r}", run, files, facts)
        if low > up_glob:
            ctx.camp.fail(part, "unsound_bound", f"{tag}:attained lower above true constant",
                          f"printed (attained) lower {low!r} > our independent upper {up_glob!r}", run, files, facts)
        elif ex is not None and Fraction(low) > ex * (1 + Fraction(1e-9)):
            ctx.camp.fail(part, "unsound_bound", f"{tag}:attained lower above exact 1-D local constant",
                          f"printed (attained) lower {low!r} > exact local constant {float(ex)!r}", run, files, facts)


# =========================================================================================== verify
def output_stats(stored: Net, X: np.ndarray) -> dict:
    Y = stored(X)
    return {j: (float(Y[:, j].min()), float(Y[:, j].max())) for j in range(stored.out_dim)}


def exact_range(stored: Net, lo_t, hi_t, k: int, timeout: float):
    if not stored.pwl:
        return None
    if stored.in_dim == 1:
        pcs = truth.Pieces1D(stored)
        return pcs.range_on(stored, Fraction(lo_t[0]), Fraction(hi_t[0]), k)
    if stored.in_dim <= 3:
        try:
            return truth.z3_range(stored, [Fraction(t) for t in lo_t], [Fraction(t) for t in hi_t], k, timeout)
        except Exception:
            return None
    return None


def make_props(ctx, stored: Net, rng, n_props: int, domain=None, huge=False):
    """Random properties on random boxes; boundary and thin properties when the exact range is known."""
    out = []
    lo_t, hi_t = P.random_box(rng, stored.in_dim, huge=huge, dyadic=(stored.label == "dyadic" and not huge))
    if domain is not None:
        lo_t = [P.num_text(max(float(Fraction(l)), float(domain[0][i])), 1) for i, l in enumerate(lo_t)]
        hi_t = [P.num_text(min(float(Fraction(h)), float(domain[1][i])), 1) for i, h in enumerate(hi_t)]
    X, lo, hi = P.sample_box(rng, lo_t, hi_t, 2000)
    stats = output_stats(stored, X)
    offset = int(rng.integers(4))
    for q in range(n_props):
        kind = (q + offset) % 4
        if kind == 1 and stored.pwl and (stored.in_dim == 1 or (stored.in_dim <= 3 and stored.label == "dyadic")):
            k = int(rng.integers(stored.out_dim))
            rng_ex = exact_range(stored, lo_t, hi_t, k, ctx.profile["z3_timeout"] / 2)
            if rng_ex is not None:
                mn, mx = rng_ex
                choices = []
                # prefer optima that are float64 values (then only strictness is tested), else finite decimals
                for t, ops in ((mx, ((">", "holds"), (">=", "violated"))), (mn, (("<", "holds"), ("<=", "violated")))):
                    if truth.is_finite_decimal(t):
                        w = 3 if Fraction(float(t)) == t else 1
                        choices += [(op, t, e) for op, e in ops for _ in range(w)]
                if choices:
                    op, t, expect = choices[int(rng.integers(len(choices)))]
                    isf = Fraction(float(t)) == t
                    pr = P.Prop(stored.in_dim, stored.out_dim,
                                P.box_atoms(lo_t, hi_t) + [P.cmp(op, P.Y(k), P.N(truth.decimal_str(t)))],
                                kind="strict-boundary" if isf else "boundary-decimal",
                                note=f"exact {'max' if op in ('>', '>=') else 'min'} = {t}"
                                     f"{'' if isf else ' (not a float64: written as its exact decimal)'}")
                    pr.expect = expect
                    out.append(pr)
                    continue
                # thin violating set just below the max
                delta = abs(mx) * Fraction(1, 10 ** 9) + Fraction(1, 10 ** 12)
                t = float(mx - delta)
                pr = P.Prop(stored.in_dim, stored.out_dim,
                            P.box_atoms(lo_t, hi_t) + [P.cmp(">=", P.Y(k), P.N(repr(t)))], kind="thin")
                out.append(pr)
                continue
        if kind == 3 and stored.pwl and stored.label == "dyadic":
            # a point box x0 (dyadic) and the exact value v = f_k(x0): the unsafe set is {x0} or empty
            x0 = [Fraction(int(rng.integers(-8, 9)), 8) for _ in range(stored.in_dim)]
            k = int(rng.integers(stored.out_dim))
            v = stored.exact(x0)[k]
            if Fraction(float(v)) == v:
                op = str(rng.choice(["<", "<=", ">", ">=", "="]))
                xt = [repr(float(t)) for t in x0]
                pr = P.Prop(stored.in_dim, stored.out_dim,
                            P.box_atoms(xt, xt) + [P.cmp(op, P.Y(k), P.N(truth.decimal_str(v)))],
                            kind="point-box-strict", note=f"f_{k}(x0) = {v} exactly")
                pr.expect = "holds" if op in ("<", ">") else "violated"
                out.append(pr)
                continue
        if kind == 2 and stored.in_dim <= 4:
            # two boxes in a disjunction
            lo2, hi2 = P.random_box(rng, stored.in_dim)
            if domain is not None:
                lo2, hi2 = lo_t, hi_t
            boxes = ("or", [("and", P.box_atoms(lo_t, hi_t)), ("and", P.box_atoms(lo2, hi2))])
            X2, _, _ = P.sample_box(rng, lo2, hi2, 500)
            st2 = output_stats(stored, np.vstack([X, X2]))
            pr = P.Prop(stored.in_dim, stored.out_dim, [boxes, P.output_constraint(rng, stored.out_dim, st2)],
                        kind="two-boxes")
            out.append(pr)
            continue
        if rng.random() < 0.25:
            pr = P.Prop(stored.in_dim, stored.out_dim,
                        P.scaled_box_atoms(rng, lo_t, hi_t) + [P.output_constraint(rng, stored.out_dim, stats)],
                        kind="scaled-box")
        else:
            pr = P.Prop(stored.in_dim, stored.out_dim,
                        P.box_atoms(lo_t, hi_t) + [P.output_constraint(rng, stored.out_dim, stats)], kind="random")
        out.append(pr)
    return out, (lo_t, hi_t)


def sample_violation(stored: Net, prop, rng, n=3000):
    """Our own falsifier: random points of the property's hull + a short random search on the float margin;
    a point counts only when the exact (rational / 60-digit) evaluation confirms it."""
    lo, hi = prop.hull()
    lo_f = np.array([float(v) for v in lo])
    hi_f = np.array([float(v) for v in hi])
    Xs = lo_f + (hi_f - lo_f) * rng.random((n, len(lo)))
    Xs = np.vstack([Xs, lo_f + (hi_f - lo_f) * rng.integers(0, 2, size=(min(2 ** len(lo), 64), len(lo)))])
    Xs = np.clip(Xs, lo_f, hi_f)
    Ys = stored(Xs)
    cands = []
    for x, y in zip(Xs[:4000], Ys[:4000]):
        env = {"X": list(x), "Y": list(y)}
        ok = all(P.fval(a, env) is not False for a in prop.asserts)
        if ok:
            cands.append(x)
            if len(cands) >= 5:
                break
    for x in cands:
        xs = [float(v) for v in x]
        if not prop.in_box(xs):
            continue
        y = stored.exact(xs) if stored.pwl else stored.decimal(xs)
        if prop.holds_at(xs, y):
            return xs
    return None


def parse_result_file(text: str):
    lines = text.strip().splitlines()
    if not lines:
        return None, None
    head = lines[0].strip()
    if head != "sat":
        return head, None
    xs = {}
    import re

    for m in re.finditer(r"\(\s*X_(\d+)\s+([^\s()]+)\s*\)", text):
        xs[int(m.group(1))] = m.group(2)
    return head, [xs[i] for i in sorted(xs)]


def check_verify(ctx, model, rng, n_props: int, part=PART, huge=False, method=None, props=None):
    stored: Net = model["net"]
    path = model["path"]
    if props is None:
        props, box = make_props(ctx, stored, rng, n_props, model.get("domain"), huge=huge)
    else:
        box = None
    d = os.path.dirname(path)
    for q, prop in enumerate(props):
        ppath = os.path.join(d, f"prop_{q}.vnnlib")
        with open(ppath, "w") as fh:
            fh.write(prop.text(header=f"; {prop.kind} {prop.note}".strip()))
        rpath = os.path.join(d, f"result_{q}.txt")
        if os.path.exists(rpath):
            os.unlink(rpath)
        # ground truth first (our own)
        t_truth = time.time()
        gt, gx = ("unknown", None)
        if stored.pwl:
            try:
                gt, gx = truth.z3_decide(stored, prop, ctx.profile["z3_timeout"])
            except Exception as exc:
                ctx.camp.notes.append(f"harness: z3 failed on {ppath}: {exc}")
        viol_sample = None
        if gt != "unsat":
            viol_sample = sample_violation(stored, prop, rng, 1500)
        if gt == "sat":
            # sanity of our own encoding: the Z3 model satisfies the property exactly
            if not (prop.in_box(gx) and prop.holds_at(gx, stored.exact(gx))):
                ctx.camp.notes.append(f"harness: z3 model does not check exactly on {ppath}")
        if gt == "unsat" and prop.expect == "violated":
            ctx.camp.notes.append(f"harness: constructed-violated property decided unsat on {ppath}")
        ctx.camp.tally("verify ground truth", f"{prop.kind}:{gt}" + (":sampled-violation" if viol_sample else ""))
        truth_s = time.time() - t_truth
        ctx.camp.tally("p1 seconds by activity (truth + CLI)", "verify: ground truth", round(truth_s, 2))
        m = method or str(rng.choice(["auto"] * 6 + ["input-split", "relu-split", "z3-plain"]))
        if m == "z3-plain" and sum(stored.widths) > 12:
            m = "auto"
        timeout = ctx.profile["verify_timeout"]
        argv = ["verify", path, ppath, "--timeout", str(timeout), "--json", "--result-file", rpath,
                *model["extra"]]
        if m != "auto":
            argv += ["--method", m]
        if rng.random() < 0.2:
            argv += ["--seed", str(int(rng.integers(0, 1000)))]
        run = ctx.runner.run(argv, timeout=timeout + 30)
        ctx.camp.case(part)
        ctx.camp.tally("CLI seconds by command", f"verify --method {m}", round(run.seconds, 2))
        files = [path, ppath]
        facts = {"net": stored.describe(), "property kind": prop.kind, "note": prop.note,
                 "ground truth (ours)": gt + (f" x={[str(v) for v in gx]}" if gx else ""),
                 "our sampler violation": viol_sample, "truth seconds": round(truth_s, 2)}
        tag = f"verify-{m}"
        if run.rc == 2 and not run.timed_out:
            first = (run.stderr.strip().splitlines() or [""])[0]
            ctx.camp.tally("verify refusals", f"{m} {_actkind(stored)}: {first[first.find('error:'):][:80]}")
            _issues_to_failures(ctx, part, error_issues(run, timeout + 30), run, files, tag, facts)
            if (m in ("auto", "input-split") or "relu" not in first) and not _loader_refuses(ctx, model):
                ctx.camp.fail(part, "wrong_exit", f"{tag}:refuses a valid property/network",
                              f"verify refused a valid instance: {first[:150]}", run, files, facts)
            continue
        iss = success_issues(run, {0, 1, 3}, timeout + 30)
        if iss:
            _issues_to_failures(ctx, part, iss, run, files, tag, facts)
            if any(c_ in ("hang", "traceback") for c_, _ in iss):
                continue
        obj = run.json()
        if not isinstance(obj, dict) or "status" not in obj:
            ctx.camp.fail(part, "wrong_exit", f"{tag}:no JSON", f"no JSON (exit {run.rc})", run, files, facts)
            continue
        st = obj["status"]
        ctx.camp.tally("verify answers", f"{prop.kind}:{st} (truth {gt})")
        want = {"holds": 0, "violated": 1, "unknown": 3}.get(st)
        if run.rc != want:
            ctx.camp.fail(part, "wrong_exit", f"{tag}:exit {run.rc} for {st}", f"status {st} but exit {run.rc}",
                          run, files, facts)
        head, file_x = (None, None)
        if os.path.exists(rpath):
            with open(rpath) as fh:
                head, file_x = parse_result_file(fh.read())
        expect_head = {"holds": ("unsat",), "violated": ("sat",), "unknown": ("timeout", "unknown")}.get(st, ())
        if head not in expect_head:
            ctx.camp.fail(part, "wrong_answer", f"{tag}:result file disagrees with status",
                          f"status {st} but result file starts with {head!r}", run, files + [rpath], facts)
        if st == "holds":
            if gt == "sat" or viol_sample is not None:
                wit = gx if gt == "sat" else viol_sample
                ctx.camp.fail(part, "wrong_answer", f"wrong holds ({prop.kind}, {_actkind(stored)}, {_consts(prop)})",
                              f"`holds` but the property is violated, e.g. at x = {[str(v) for v in wit]}",
                              run, files, facts)
        elif st == "violated":
            if gt == "unsat":
                ctx.camp.fail(part, "wrong_answer",
                              f"violated but holds ({prop.kind}, strict={_has_strict(prop)}, {_consts(prop)})",
                              f"`violated` but the property holds (exact Z3 on our encoding: unsat); "
                              f"cex {obj.get('counterexample')}", run, files, facts)
                continue
            for src, xs in (("json", obj.get("counterexample")), ("result-file", file_x)):
                if xs is None:
                    ctx.camp.fail(part, "wrong_cex", f"{tag}:missing counterexample ({src})",
                                  f"`violated` without a counterexample in the {src}", run, files, facts)
                    continue
                check_cex(ctx, part, stored, prop, xs, src, obj, run, files, facts, tag)
    return box


def _consts(prop) -> str:
    return "float64 constants" if P.float_constants(prop) else "decimal constants"


def _has_strict(prop) -> bool:
    return "(<" in prop.text().replace("(<=", "") or "(>" in prop.text().replace("(>=", "")


def check_cex(ctx, part, stored, prop, xs, src, obj, run, files, facts, tag):
    try:
        xf = [float(v) for v in xs]
    except (TypeError, ValueError):
        ctx.camp.fail(part, "wrong_cex", f"{tag}:unparsable counterexample", f"{src}: {xs!r}", run, files, facts)
        return
    if len(xf) != stored.in_dim:
        ctx.camp.fail(part, "wrong_cex", f"{tag}:counterexample of wrong length", f"{src}: {xs!r}", run, files, facts)
        return
    if src == "result-file":
        # VNN-COMP tools read the file's values as float64: they must be the JSON counterexample
        js = obj.get("counterexample")
        if js is not None and [float(v) for v in js] != xf:
            ctx.camp.fail(part, "wrong_cex", f"{tag}:result file and JSON counterexamples differ",
                          f"result file x = {xs}, JSON x = {js}", run, files, facts)
    if not prop.in_box(xf):
        ctx.camp.fail(part, "wrong_cex", f"counterexample outside the box as written ({src})",
                      f"x = {xs} is outside the input box as written", run, files, facts)
        return
    y = stored.exact(xf) if stored.pwl else stored.decimal(xf)
    ok = prop.holds_at(xf, y)
    strict = _has_strict(prop)
    if ok is False:
        ctx.camp.fail(part, "wrong_cex",
                      f"counterexample does not violate as written ({prop.kind}, strict={strict}, {_consts(prop)}, "
                      f"{src})",
                      f"x = {xs}: exact f(x) = {[float(v) for v in y]} does not satisfy the unsafe condition as "
                      f"written", run, files, facts)
    elif ok is None:
        ctx.camp.tally("counterexamples undecidable at 60 digits", prop.kind)
    yp = obj.get("output")
    if yp is not None and len(yp) == len(y):
        yt = np.array([float(v) for v in y])
        scale = max(np.abs(yt).max(), 1e-300)
        if np.abs(np.array(yp, dtype=float) - yt).max() > 1e-6 * scale + 1e-12 * _mag(stored, xf):
            ctx.camp.fail(part, "wrong_cex", f"{tag}:printed output is not f(x)",
                          f"printed y = {yp}, exact f(x) = {yt.tolist()}", run, files, facts)


def _mag(stored: Net, x) -> float:
    """Scale of the intermediate values at x (for round-off tolerances)."""
    h = np.abs(np.asarray(x, dtype=float))
    m = 1.0
    for w, b in zip(stored.Ws, stored.bs):
        h = np.abs(w) @ h + np.abs(b)
        m = max(m, float(h.max()))
    return m


# =========================================================================================== API bounds
def check_api_bounds(ctx, model, box, part=PART):
    stored: Net = model["net"]
    lo_t, hi_t = box
    lo = [float(Fraction(t)) for t in lo_t]
    hi = [float(Fraction(t)) for t in hi_t]
    # the API takes float boxes: ground truth on the float box
    lo_q = [Fraction(v) for v in lo]
    hi_q = [Fraction(v) for v in hi]
    ranges = []
    exact = stored.pwl and stored.in_dim <= 3
    for k in range(stored.out_dim):
        r = None
        if exact:
            if stored.in_dim == 1:
                r = truth.Pieces1D(stored).range_on(stored, lo_q[0], hi_q[0], k)
            else:
                r = truth.z3_range(stored, lo_q, hi_q, k, ctx.profile["z3_timeout"] / 2)
        ranges.append(r)
    rng = np.random.default_rng(0)
    X = np.array(lo) + (np.array(hi) - np.array(lo)) * rng.random((3000, stored.in_dim))
    X = np.vstack([X, np.array(lo) + (np.array(hi) - np.array(lo)) * rng.integers(0, 2, (64, stored.in_dim))])
    Ys = stored(X)
    methods = ["ibp", "crown", "alpha-crown"]
    args = {"path": model["path"], "lo": lo, "hi": hi, "methods": methods}
    if "--arch" in model["extra"]:
        args["arch"] = model["extra"][model["extra"].index("--arch") + 1]
    run = ctx.runner.api("bounds", args, timeout=60)
    ctx.camp.case(part)
    files = [model["path"]]
    facts = {"net": stored.describe(), "box": f"{lo} .. {hi}",
             "exact ranges (ours)": [None if r is None else (float(r[0]), float(r[1])) for r in ranges],
             "sampled ranges (ours)": [(float(Ys[:, k].min()), float(Ys[:, k].max())) for k in range(stored.out_dim)]}
    if run.timed_out or run.rc not in (0, 2) or "Traceback" in run.stderr:
        cat = "hang" if run.timed_out else "traceback"
        ctx.camp.fail(part, cat, f"api-output_bounds:{cat}", f"output_bounds: exit {run.rc}; "
                      f"{(run.stderr.strip().splitlines() or [''])[-1][:150]}", run, files, facts)
        return
    obj = run.json() or {}
    if "refused" in obj:
        ctx.camp.tally("api output_bounds refusals", obj["refused"][:80])
        return
    for m in methods:
        res = obj.get(m) or {}
        if "refused" in res:
            ctx.camp.tally("api output_bounds refusals", f"{m} {_actkind(stored)}: {res['refused'][:70]}")
            continue
        for k in range(stored.out_dim):
            L, U = res["lower"][k], res["upper"][k]
            if ranges[k] is not None:
                mn, mx = ranges[k]
            else:
                mn, mx = Fraction(float(Ys[:, k].min())), Fraction(float(Ys[:, k].max()))
            scale = max(abs(float(mn)), abs(float(mx)), 1e-300)
            tol = Fraction(1e-9 * scale)
            bad = []
            if not (L == L and U == U):
                bad.append("NaN bound")
            else:
                if Fraction(L) > mn + tol:
                    bad.append(f"lower {L!r} > {'exact' if ranges[k] is not None else 'sampled'} min {float(mn)!r}")
                if Fraction(U) < mx - tol:
                    bad.append(f"upper {U!r} < {'exact' if ranges[k] is not None else 'sampled'} max {float(mx)!r}")
                if not bad and (Fraction(L) > mn or Fraction(U) < mx):
                    ctx.camp.tally("round-off level (<1e-9 rel) bound violations", f"output_bounds {m}")
            if bad:
                ctx.camp.fail(part, "unsound_bound", f"api-output_bounds-{m}:({_actkind(stored)})",
                              f"output_bounds(..., {m!r}) output {k}: " + "; ".join(bad), run, files, facts)
