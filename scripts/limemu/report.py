"""Self-contained HTML reports with PNG plots: one run (``limemu report RUN.json``) and a sweep.

A run report holds:

* loss and precision (cut, or error of the weights) versus step, with the target and the
  time-to-solution (solution.py);
* heat and work versus step against the Landauer bound ``N b`` and the speed bound
  ``n_net D_min(n_net / evaluations)`` (docs/physics.md §10);
* the schedules E0(k) and eta(k), exactly as the hardware computes them;
* an E0-versus-tilt map in the style of Fig. 3A of arXiv 2402.14878: the inadmissible region
  ``r = J / J_max > 1`` shaded, contours of r, and the traced cells' (D, E0_eff) over time
  (trace.py defines the coordinates), beside the distribution of the tilts versus step;
* the energy table in u and J at a chosen temperature, with the cost models of docs/energy.md
  side by side: ideal LIM (heat only), LIM + consolidation (heat + barrier work) and
  conventional digital (evaluations x J per operation, 10 pJ by default);
* the counters and the configuration.

The PNGs are written into a folder beside the HTML and embedded in it as base64 data URIs: the
HTML alone opens correctly in a browser with no network (no scripts, styles or fonts loaded).
Plots use matplotlib's Agg canvas directly (no pyplot, no global state).
"""

import base64
import html
import io
import json
import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from limemu.model import physics
from limemu.model.errors import ConfigError
from limemu.model.spec import Spec
from limemu.model.thermo import BELOW_LANDAUER

from . import results
from .files import check_output_file, check_output_folder, write_atomic
from .solution import bound_curve, time_and_energy_to_solution
from .trace import load_trace

SCHEDULE_POINTS = 2000          # schedule samples plotted
PNG_DPI = 90


def fmt(value):
    """How every number appears in the reports: 6 significant digits, integers exactly."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.6g}"


def _num(value):
    """A JSON number that _jsonable may have written as a string ('inf')."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return value


# -- figures ------------------------------------------------------------------------------------
def _figure(width=8.0, height=3.4, ncols=1, nrows=1):
    fig = Figure(figsize=(width, height), dpi=PNG_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    return fig, axes


def _png(fig):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None},
                pil_kwargs={"optimize": True})
    return buffer.getvalue()


def plot_progress(result, trace, solution):
    """Loss and precision versus step."""
    fig, (ax_loss, ax_prec) = _figure(ncols=2)
    step = trace["step"]
    ax_loss.plot(step, trace["loss"], color="C0")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss L(W)")
    ax_loss.set_title("loss")
    metric = solution["metric"]
    ax_prec.plot(step, trace["precision"], color="C1", label=metric)
    if solution.get("target_value") is not None:
        ax_prec.axhline(solution["target_value"], color="k", ls="--", lw=1,
                        label=f"target {fmt(solution['target_value'])}")
    if metric == "cut" and solution.get("reference") is not None:
        ax_prec.axhline(solution["reference"], color="C2", ls=":", lw=1,
                        label=f"reference {fmt(solution['reference'])}")
    if solution["reached"]:
        ax_prec.axvline(solution["time_to_solution_steps"], color="C3", lw=1,
                        label=f"time to solution {solution['time_to_solution_steps']}")
    ax_prec.set_xlabel("step")
    ax_prec.set_ylabel("cut" if metric == "cut" else "error max|W - W_opt| (steps)")
    ax_prec.set_title("cut" if metric == "cut" else "error of the weights")
    ax_prec.legend(fontsize=7)
    return _png(fig)


def plot_energy(result, trace):
    """Heat and work versus step against the Landauer and speed bounds."""
    spec = result["config"]["spec"]
    lsb = 2.0 ** -spec["barrier_frac_bits"]
    names = trace["counter_names"].tolist()
    col = {name: trace["counters"][:, names.index(name)].astype(np.float64) for name in names}
    step = trace["step"]
    fig, (ax_heat, ax_work) = _figure(ncols=2)
    ax_heat.plot(step, col["heat_net"] * lsb, label="heat, net Q_net")
    ax_heat.plot(step, col["heat_abs"] * lsb, label="heat, gross sum|D|")
    landauer = spec["cells"] * spec["weight_bits"]
    ax_heat.axhline(landauer, color="k", ls="--", lw=1, label=f"Landauer N b = {landauer} u")
    clausius = result["energy"].get("clausius_bound_u")
    if clausius is not None:
        ax_heat.axhline(clausius, color="C2", ls=":", lw=1,
                        label=f"Clausius H0 - HK = {clausius:.3g} u (mean, end of run)")
    net = trace["net_updates"].astype(np.float64)
    evaluations = col["evaluations"]
    speed = np.full(len(step), np.nan)
    ok = evaluations > 0
    rate = np.divide(net, evaluations, out=np.zeros_like(net), where=ok)
    finite = ok & (rate < 1)
    speed[finite] = net[finite] * np.asarray(physics.d_min(rate[finite]))
    ax_heat.plot(step, speed, color="C3", ls="-.", label="speed bound n_net D_min(J)")
    ax_heat.set_yscale("symlog", linthresh=1.0)
    ax_heat.set_xlabel("step")
    ax_heat.set_ylabel("energy (u = kT ln 2)")
    ax_heat.set_title("heat against the bounds")
    ax_heat.legend(fontsize=7)
    ax_work.plot(step, col["barrier_work"] * lsb, color="C4", label="barrier work")
    ax_work.plot(step, col["anneal_work"] * lsb, color="C5", label="annealing work")
    ax_work.set_xlabel("step")
    ax_work.set_ylabel("energy (u)")
    ax_work.set_title("work")
    ax_work.legend(fontsize=7)
    return _png(fig)


def plot_schedules(result):
    """E0(k) and eta(k) as the hardware computes them."""
    spec = Spec.from_dict(result["config"]["spec"])
    steps = int(result["steps"])
    k = np.unique(np.linspace(0, steps, min(steps + 1, SCHEDULE_POINTS)).round().astype(np.int64))
    e0 = spec.barrier.values_at(k) * 2.0 ** -spec.barrier_frac_bits
    eta = spec.gain.values_at(k) * 2.0 ** -spec.gain_frac_bits
    fig, (ax_e0, ax_eta) = _figure(ncols=2, height=3.0)
    ax_e0.step(k, e0, where="post", color="C0")
    ax_e0.set_xlabel("step")
    ax_e0.set_ylabel("barrier E0 (u)")
    ax_e0.set_title("barrier schedule")
    ax_eta.step(k, eta, where="post", color="C1")
    ax_eta.set_xlabel("step")
    ax_eta.set_ylabel("gain eta (u per loss unit)")
    ax_eta.set_title("gain schedule")
    return _png(fig)


def plot_map(result, trace):
    """The E0-versus-tilt map (Fig. 3A style) and the tilt distribution versus step."""
    spec = Spec.from_dict(result["config"]["spec"])
    steps = int(result["steps"])
    k = np.linspace(0, steps, min(steps + 1, SCHEDULE_POINTS)).round().astype(np.int64)
    e0_sched = spec.barrier.values_at(k) * 2.0 ** -spec.barrier_frac_bits
    if trace is not None:
        tilts = np.concatenate([trace["tracked_tilt"].ravel(), trace["tilt_quantiles"].ravel()])
        e0s = np.concatenate([trace["tracked_e0"].ravel(), e0_sched])
    else:
        tilts, e0s = np.zeros(1), e0_sched
    d_max = max(4.0, 1.1 * float(np.max(np.abs(tilts))))
    e_max = max(4.0, 1.15 * float(np.max(e0s)) + 1.0)
    D = np.linspace(-d_max, d_max, 401)
    E = np.linspace(0.0, e_max, 301)
    DD, EE = np.meshgrid(D, E)
    log2_r = np.asarray(physics.e0_at_max_rate(DD)) - EE       # log2 r, no overflow
    ncols = 2 if trace is not None else 1
    fig, axes = _figure(width=9.0, height=4.0, ncols=ncols)
    ax = axes[0]
    ax.contourf(DD, EE, log2_r, levels=[0.0, np.inf], colors=["0.80"])
    levels = np.log2([0.01, 0.1, 0.5])
    lines = ax.contour(DD, EE, log2_r, levels=levels, colors="0.45", linewidths=0.7)
    ax.clabel(lines, fmt={lv: f"r={2 ** lv:g}" for lv in levels}, fontsize=7)
    ax.contour(DD, EE, log2_r, levels=[0.0], colors="k", linewidths=1.4)
    ax.text(-0.97 * d_max, 0.03 * e_max, "inadmissible: r > 1", ha="left", va="bottom",
            fontsize=8, bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.5})
    if trace is not None:
        step = trace["step"]
        for c in range(trace["tracked_tilt"].shape[1]):
            x, y = trace["tracked_tilt"][:, c], trace["tracked_e0"][:, c]
            ax.plot(x, y, color="0.6", lw=0.6, zorder=2)
            points = ax.scatter(x, y, c=step, cmap="viridis", s=9, zorder=3, vmin=0,
                                vmax=max(int(step[-1]), 1))
            ax.plot(x[:1], y[:1], "o", mfc="none", mec="C3", ms=6, zorder=4)
            ax.plot(x[-1:], y[-1:], "s", color="C3", ms=4, zorder=4)
        fig.colorbar(points, ax=ax, label="step", shrink=0.85)
        ax.set_title(f"E0 vs tilt: {trace['tracked_tilt'].shape[1]} cells "
                     "(o start, \u25a0 end)", fontsize=9)
    else:
        ax.set_title("E0 vs tilt (no trace)", fontsize=9)
    ax.set_xlim(-d_max, d_max)
    ax.set_ylim(0.0, e_max)
    ax.set_xlabel("tilt D = -eta delta g (u)")
    ax.set_ylabel("barrier E0_eff = E0 + eta delta^2 Q_nn / 4 (u)")
    if trace is not None:
        ax2 = axes[1]
        q = trace["tilt_quantiles"]
        levels = list(np.round(trace["tilt_levels"], 4))
        at = {lv: i for i, lv in enumerate(levels)}
        step = trace["step"]
        ax2.fill_between(step, q[:, at[0.05]], q[:, at[0.95]], color="C0", alpha=0.2,
                         label="5-95 %")
        ax2.fill_between(step, q[:, at[0.25]], q[:, at[0.75]], color="C0", alpha=0.35,
                         label="25-75 %")
        ax2.plot(step, q[:, at[0.5]], color="C0", label="median")
        ax2.plot(step, q[:, at[0.0]], color="C0", ls=":", lw=0.8, label="min / max")
        ax2.plot(step, q[:, at[1.0]], color="C0", ls=":", lw=0.8)
        ax2.set_xlabel("step")
        ax2.set_ylabel("tilt D (u)")
        ax2.set_title("tilts of all cells", fontsize=9)
        ax2.legend(fontsize=7)
    return _png(fig)


# -- HTML ---------------------------------------------------------------------------------------
STYLE = """
body { font-family: sans-serif; max-width: 64rem; margin: 1.5rem auto; padding: 0 1rem;
       color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #bbb; padding: 0.2rem 0.6rem; text-align: left; }
td.n { text-align: right; font-family: monospace; }
img { max-width: 100%; border: 1px solid #ddd; }
pre { background: #f6f6f6; padding: 0.5rem; overflow-x: auto; font-size: 0.8rem; }
.note { color: #555; font-size: 0.9rem; }
"""


def _img(name, png):
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{html.escape(name)}" data-file="{html.escape(name)}" '
            f'src="data:image/png;base64,{data}"></figure>')


def _cell(value, key=None):
    attr = f' data-key="{html.escape(key)}"' if key else ""
    cls = ' class="n"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    return f"<td{cls}{attr}>{html.escape(fmt(value))}</td>"


def _table(header, rows):
    """rows: lists of cells, each a value or (value, data-key)."""
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        cells = []
        for i, item in enumerate(row):
            if i == 0:
                cells.append(f"<th>{html.escape(str(item))}</th>")
            elif isinstance(item, tuple):
                cells.append(_cell(*item))
            else:
                cells.append(_cell(item))
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _page(title, body):
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def energy_rows(result, temperature_K, j_per_op):
    """(label, u, J, key) of the energy table; u from the JSON, J at temperature_K."""
    e, c = result["energy"], result["counters"]
    u_J = physics.landauer_unit_J(temperature_K)
    rows = [
        ("heat released, net Q_net", e["heat_net_u"], "heat_net_u"),
        ("heat, gross sum |D|", e["heat_abs_u"], "heat_abs_u"),
        ("barrier work", e["barrier_work_u"], "barrier_work_u"),
        ("annealing work", e["anneal_work_u"], "anneal_work_u"),
    ]
    if "coupling_error_u" in e:
        rows.append(("coupling error", e["coupling_error_u"], "coupling_error_u"))
    rows += [
        ("Landauer bound N b", _num(e["landauer_bound_u"]), "landauer_bound_u"),
    ]
    if "clausius_bound_u" in e:
        rows.append(("Clausius bound H0 - HK (exact distributions)", e["clausius_bound_u"],
                     "clausius_bound_u"))
    rows += [
        (f"speed bound n_net D_min(J), J = {fmt(_num(e['net_rate']))}",
         _num(e["speed_bound_u"]), "speed_bound_u"),
    ]
    out = [(label, u, None if u is None else u * u_J, key) for label, u, key in rows]
    conventional_J = c["evaluations"] * j_per_op
    models = [
        ("ideal LIM (heat only)", e["heat_net_u"], e["heat_net_u"] * u_J, "model_ideal_lim"),
        ("LIM + consolidation (heat + barrier work)", e["heat_net_u"] + e["barrier_work_u"],
         (e["heat_net_u"] + e["barrier_work_u"]) * u_J, "model_lim_consolidation"),
        (f"conventional digital ({c['evaluations']} evaluations x {fmt(j_per_op * 1e12)} pJ)",
         conventional_J / u_J, conventional_J, "model_conventional"),
    ]
    return out, models


def run_report_html(result, trace, figures, temperature_K, j_per_op, solution):
    e = result["energy"]
    rc = result.get("run_config") or {}
    spec = result["config"]["spec"]
    parts = []
    summary = [
        ("workload", result["workload"]), ("backend", result["backend"]),
        ("cells", spec["cells"]), ("weight bits", spec["weight_bits"]),
        ("lanes", spec["lanes"]), ("order", spec["order"]), ("steps", result["steps"]),
        ("seed", spec["seed"]),
        ("barrier schedule", rc.get("barrier", json.dumps(spec["barrier"]))),
        ("gain schedule", rc.get("gain", json.dumps(spec["gain"]))),
        ("final loss L(W)", (result["loss"], "loss")),
    ]
    if "cut" in result:
        summary.append(("cut", (result["cut"], "cut")))
    for key in ("best_known", "cut_ratio", "max_abs_error_vs_cont", "rmse_model", "rmse_numpy",
                "distance_inf", "loss_gap"):
        if key in result["metrics"]:
            summary.append((key, (result["metrics"][key], f"metrics.{key}")))
    summary += [("first law", result["identities"]["first_law"]),
                ("wall time (s)", result["seconds"]),
                ("cell evaluations per s", result["cell_evaluations_per_s"])]
    parts.append("<h2>Run</h2>" + _table(["", "value"], [[k, v] for k, v in summary]))
    if trace is not None:
        parts.append("<h2>Loss and precision</h2>" + _img("progress.png", figures["progress"]))
        parts.append(_solution_html(solution))
        parts.append("<h2>Heat and work versus step</h2>" + _img("energy.png",
                                                                 figures["energy"]))
    else:
        parts.append('<p class="note">No trace in this result: run with --trace-every K '
                     "for loss, heat and tilts versus step.</p>")
    parts.append("<h2>Schedules</h2>" + _img("schedules.png", figures["schedules"]))
    parts.append("<h2>Barrier versus tilt (Fig. 3A of arXiv 2402.14878)</h2>"
                 + _img("map.png", figures["map"]))
    parts.append('<p class="note">Shaded: the inadmissible region r = J/J<sub>max</sub> &gt; 1, '
                 "where 2<sup>-E0</sup>(2<sup>D/2</sup> + 2<sup>-D/2</sup>) &gt; 1; grey lines: "
                 "constant r. A cell at field g sits at tilt D = -&eta;&delta;g and effective "
                 "barrier E0 + &eta;&delta;<sup>2</sup>Q<sub>nn</sub>/4.</p>")
    rows, models = energy_rows(result, temperature_K, j_per_op)
    u_J = physics.landauer_unit_J(temperature_K)
    parts.append(f"<h2>Energy (T = {fmt(temperature_K)} K, 1 u = kT ln 2 = {fmt(u_J)} J)</h2>")
    parts.append(_table(["quantity", "u", "J"],
                        [[label, (u, key), (j, key.replace("_u", "_J"))]
                         for label, u, j, key in rows]))
    parts.append(f'<p class="note">{html.escape(BELOW_LANDAUER)}.</p>')
    parts.append("<h3>Cost models</h3>")
    parts.append(_table(["model", "u", "J"], [[label, (u, key + "_u"), (j, key + "_J")]
                                               for label, u, j, key in models]))
    ratios = [["net heat / Landauer bound", (_num(e.get("ratio_to_landauer")),
                                             "ratio_to_landauer")],
              ["net heat / speed bound", (_num(e.get("ratio_to_speed_bound")),
                                          "ratio_to_speed_bound")],
              *([["net heat / Clausius bound", (_num(e.get("ratio_to_clausius")),
                                                "ratio_to_clausius")]]
                if "clausius_bound_u" in e else []),
              ["conventional / ideal LIM",
               (models[2][2] / models[0][2] if models[0][2] else None, "ratio_conventional")]]
    parts.append(_table(["ratio", "value"], ratios))
    parts.append("<h2>Counters</h2>" + _table(
        ["counter", "value", "overflow"],
        [[name, (value, f"counters.{name}"), result["overflow"].get(name, False)]
         for name, value in result["counters"].items()]))
    config = {"run_config": result.get("run_config"), "config": result["config"]}
    parts.append("<h2>Configuration</h2><pre>" + html.escape(json.dumps(config, indent=1))
                 + "</pre>")
    title = f"limemu run report: {result['workload']}, {spec['cells']} cells, seed {spec['seed']}"
    return _page(title, "\n".join(parts))


def _solution_html(s):
    rows = [["precision metric", s["metric"]]]
    if s["metric"] == "cut":
        rows += [["reference cut", (s.get("reference"), "solution.reference")],
                 ["reference source", s.get("reference_source")],
                 ["target fraction", (s["cut_fraction"], "solution.cut_fraction")]]
    rows += [["target value", (s.get("target_value"), "solution.target_value")],
             ["best value", (s["best_value"], "solution.best_value")],
             ["reached", s["reached"]],
             ["time to solution (steps)", (s["time_to_solution_steps"],
                                           "solution.time_to_solution_steps")],
             ["energy to solution, net heat (u)", (s["energy_to_solution_u"],
                                                   "solution.energy_to_solution_u")],
             ["energy to solution (J)", (s["energy_to_solution_J"],
                                         "solution.energy_to_solution_J")]]
    if s["reached"]:
        rows += [["LIM + consolidation to solution (u)",
                  (s["lim_consolidation_to_solution_u"], "solution.lim_consolidation")],
                 ["net updates to solution", (s["net_updates_to_solution"],
                                              "solution.net_updates")],
                 ["speed bound at solution (u)", (s["speed_bound_to_solution_u"],
                                                  "solution.speed_bound")]]
    return ("<h3>Time and energy to solution</h3>" + _table(["", "value"], rows)
            + '<p class="note">First traced step at which the target is met (resolution: the '
            "trace interval); energy = net heat released up to then. Definitions: "
            "limemu/solution.py and the README.</p>")


def report_paths(json_path, out=None):
    """(html path, png folder) of a run's report: ``runs/x.json`` -> ``runs/x.report.html`` and
    ``runs/x.report/``."""
    json_path = Path(json_path)
    stem = json_path.name[:-5] if json_path.name.endswith(".json") else json_path.name
    html_path = Path(out) if out else json_path.with_name(stem + ".report.html")
    name = html_path.name[:-5] if html_path.name.endswith(".html") else html_path.name
    return html_path, html_path.with_name(name)


def load_result(json_path):
    """The run result at ``json_path``, checked (results.check_result)."""
    return results.load_result(json_path)


def write_run_report(json_path, out=None, temperature_K=None,
                     j_per_op=physics.CONVENTIONAL_J_PER_OP, target=None):
    """Write the HTML report (and its PNGs) of the run at ``json_path``; returns the HTML path.

    ``temperature_K`` defaults to the run's; ``target`` as in solution.target_settings."""
    result = load_result(json_path)
    trace = load_trace(result, json_path)
    T = float(temperature_K or result["energy"]["temperature_K"])
    if not T > 0:
        raise ConfigError(f"--temperature = {temperature_K}: must be > 0 K")
    if not j_per_op > 0:
        raise ConfigError(f"--j-per-op = {j_per_op}: must be > 0")
    html_path, folder = report_paths(json_path, out)
    check_output_file(html_path, "--out")
    check_output_folder(folder, "--out (its PNG folder)")
    solution = time_and_energy_to_solution(result, trace, target, temperature_K=T) \
        if trace is not None else None
    figures = {"schedules": plot_schedules(result), "map": plot_map(result, trace)}
    if trace is not None:
        figures["progress"] = plot_progress(result, trace, solution)
        figures["energy"] = plot_energy(result, trace)
    for name, png in figures.items():
        write_atomic(folder / f"{name}.png", png)
    write_atomic(html_path, run_report_html(result, trace, figures, T, j_per_op, solution))
    return html_path


# -- sweeps -------------------------------------------------------------------------------------
def plot_tradeoff(table):
    """Energy-to-solution versus time-to-solution, one colour per group, with the D_min(J)
    bound curves; and the fraction of runs reaching the target per group."""
    fig, (ax, ax_frac) = _figure(width=10.0, height=4.2, ncols=2)
    groups = list(table.groupby("group", sort=True))
    done = table[table["reached"].fillna(False).astype(bool)]
    for i, (label, rows) in enumerate(groups):
        hit = rows[rows["reached"].fillna(False).astype(bool)]
        if len(hit):
            ax.scatter(hit["time_to_solution_steps"], hit["energy_to_solution_u"].clip(lower=1e-3),
                       color=f"C{i % 10}", s=22, label=label, zorder=3)
    if len(done):
        t_lo = max(1.0, float(done["time_to_solution_steps"].min()) / 3)
        t_hi = float(table["steps"].max()) * 1.5
        for (cells, workload), rows in done.groupby(["cells", "workload"]):
            n_net = float(rows["net_updates_to_solution"].median())
            if n_net <= 0:
                continue
            t_min = n_net / cells
            T = np.geomspace(max(t_lo, t_min * 1.0001), t_hi, 200)
            ax.plot(T, bound_curve(n_net, cells, T), color="k", lw=1.2, ls="--",
                    label=f"speed bound {workload} N={cells}: n_net D_min(n_net/(N T)), "
                    f"n_net={n_net:g}")
            bits = int(rows["bits"].iloc[0])
            ax.axhline(cells * bits, color="0.5", lw=0.8, ls=":",
                       label=f"Landauer N b = {cells * bits} u")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("time to solution (steps)")
    ax.set_ylabel("energy to solution, net heat (u)")
    ax.set_title("speed-energy trade-off at the target precision", fontsize=9)
    if groups:
        ax.legend(fontsize=6)
    labels = [label for label, _ in groups]
    fractions = [float(rows["reached"].fillna(False).astype(bool).mean()) for _, rows in groups]
    ax_frac.barh(range(len(labels)), fractions, color=[f"C{i % 10}" for i in range(len(labels))])
    ax_frac.set_yticks(range(len(labels)), labels, fontsize=7)
    ax_frac.set_xlim(0, 1)
    ax_frac.set_xlabel("fraction of runs that reached the target")
    ax_frac.set_title("reached", fontsize=9)
    return _png(fig)


def write_sweep_report(table, out_dir, meta):
    """The sweep report (HTML + tradeoff.png) from the results table (pandas DataFrame)."""
    out_dir = Path(out_dir)
    png = plot_tradeoff(table)
    write_atomic(out_dir / "report" / "tradeoff.png", png)
    rows = []
    for label, group in table.groupby("group", sort=True):
        reached = group["reached"].fillna(False).astype(bool)
        hit = group[reached]
        rows.append([label, (len(group), None), (int(reached.sum()), None),
                     (float(reached.mean()), None),
                     (float(hit["time_to_solution_steps"].median()) if len(hit) else None, None),
                     (float(hit["energy_to_solution_u"].median()) if len(hit) else None, None),
                     (float(hit["energy_to_solution_J"].median()) if len(hit) else None, None)])
    parts = [
        f"<p>{len(table)} runs; varying: {html.escape(', '.join(meta.get('varying', [])) or '-')}"
        f"; target: {html.escape(json.dumps(meta.get('target', {})))}; table: "
        f"{html.escape(str(meta.get('table', '')))}</p>",
        "<h2>Speed, energy and precision</h2>", _img("tradeoff.png", png),
        '<p class="note">Each point is a run that reached the target: the first traced step '
        "at which it did and the net heat released until then. Dashed: the speed bound for "
        "the median number of net updates of those runs, n<sub>net</sub> D<sub>min</sub>"
        "(n<sub>net</sub>/(N T)); dotted: Landauer N b.</p>",
        "<h2>Per group</h2>",
        _table(["group", "runs", "reached", "fraction", "median time (steps)",
                "median energy (u)", "median energy (J)"], rows),
    ]
    failed = meta.get("failed") or []
    if failed:
        parts.append("<h2>Failed runs</h2>" + _table(["run", "error"], [[h, e] for h, e in
                                                                        failed]))
    path = out_dir / "report.html"
    write_atomic(path, _page(f"limemu sweep report: {meta.get('name', '')}", "\n".join(parts)))
    return path
