"""Bit-exact comparison of two backends at checkpoints (the cross-check).

Both sessions run the same steps in the same segments; after each segment every weight,
every counter (as the hardware holds it: wrapped, with its overflow flag) and, in field mode,
every entry of the field g are compared. The first difference is reported with the step, the
seed and the spec's repr, so that it can be reproduced.
"""

from limemu.model.counters import Counters


def hardware_view(spec, exact):
    return Counters.from_exact(spec, exact).hardware()


def first_difference(spec, reference, other, *, field=True):
    """None, or a description of the first differing weight, counter, flag or field entry."""
    for i, (x, y) in enumerate(zip(reference.weights().tolist(), other.weights().tolist())):
        if x != y:
            return f"weights[{i}]: {reference.name} {x}, {other.name} {y}"
    a, b = hardware_view(spec, reference.counters()), hardware_view(spec, other.counters())
    for name in a:
        if a[name] != b[name]:
            return f"counter {name}: {reference.name} {a[name]}, {other.name} {b[name]}"
    fa, fb = reference.overflow(), other.overflow()
    for name in fa:
        if fa[name] != fb[name]:
            return f"overflow flag {name}: {reference.name} {fa[name]}, {other.name} {fb[name]}"
    ca, cb = reference.cell_counters(), other.cell_counters()
    if ca is not None and cb is not None:
        for direction, xs, ys in (("up", ca[0], cb[0]), ("down", ca[1], cb[1])):
            for i, (x, y) in enumerate(zip(xs.tolist(), ys.tolist())):
                if x != y:
                    return f"cell_{direction}[{i}]: {reference.name} {x}, {other.name} {y}"
        if ca[2] != cb[2]:
            return f"cell counter wrap flag: {reference.name} {ca[2]}, {other.name} {cb[2]}"
    if field:
        ga, gb = reference.field(), other.field()
        if ga is not None and gb is not None:
            for i, (x, y) in enumerate(zip(ga.tolist(), gb.tolist())):
                if x != y:
                    return f"field g[{i}]: {reference.name} {x}, {other.name} {y}"
    return None


def checkpoints(steps, count):
    """Segment lengths: `count` roughly equal segments summing to `steps`."""
    count = max(1, min(int(count), int(steps)))
    bounds = [round(steps * (i + 1) / count) for i in range(count)]
    return [b - a for a, b in zip([0] + bounds[:-1], bounds)]


def crosscheck(spec, reference, other, steps, *, segments=4, half_tilt=None, log=None):
    """Run both sessions in `segments` segments; returns (None or the first mismatch message,
    steps compared). `half_tilt(step, weights)` selects external-tilt mode."""
    done = 0
    for count in checkpoints(steps, segments):
        for session in (reference, other):
            if half_tilt is None:
                session.run(count)
            else:
                session.run_external(count, half_tilt)
        done += count
        difference = first_difference(spec, reference, other, field=half_tilt is None)
        if log:
            verdict = "identical" if difference is None else "DIFFERENT"
            log(f"  checkpoint at step {done}: {verdict}")
        if difference is not None:
            return (f"after step {done} (seed {spec.seed}): first mismatch {difference} "
                    f"[{spec!r}]"), done
    return None, done
