//! A small Nelder–Mead minimiser (no dependency needed for 2–4 smoothing parameters).

/// Minimises `f` from `x0` with initial simplex edge `step`, for at most `max_evals` evaluations.
/// Non-finite objective values count as +infinity, so a bad region is simply avoided.
pub(crate) fn nelder_mead(
    mut f: impl FnMut(&[f64]) -> f64,
    x0: &[f64],
    step: f64,
    max_evals: usize,
) -> Vec<f64> {
    let dim = x0.len();
    let mut eval = |x: &[f64]| {
        let v = f(x);
        if v.is_finite() { v } else { f64::INFINITY }
    };
    let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(dim + 1);
    simplex.push((x0.to_vec(), eval(x0)));
    for i in 0..dim {
        let mut x = x0.to_vec();
        x[i] += step;
        let v = eval(&x);
        simplex.push((x, v));
    }
    let mut evals = dim + 1;
    while evals < max_evals {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let spread = simplex[dim].1 - simplex[0].1;
        if spread.abs() <= 1e-10 * (simplex[0].1.abs() + 1e-12) {
            break;
        }
        let centroid: Vec<f64> = (0..dim)
            .map(|j| simplex[..dim].iter().map(|(x, _)| x[j]).sum::<f64>() / dim as f64)
            .collect();
        let worst = simplex[dim].clone();
        let along = |t: f64| -> Vec<f64> {
            (0..dim)
                .map(|j| centroid[j] + t * (worst.0[j] - centroid[j]))
                .collect()
        };
        let reflected = along(-1.0);
        let fr = eval(&reflected);
        evals += 1;
        if fr < simplex[0].1 {
            let expanded = along(-2.0);
            let fe = eval(&expanded);
            evals += 1;
            simplex[dim] = if fe < fr { (expanded, fe) } else { (reflected, fr) };
        } else if fr < simplex[dim - 1].1 {
            simplex[dim] = (reflected, fr);
        } else {
            let contracted = if fr < worst.1 { along(-0.5) } else { along(0.5) };
            let fc = eval(&contracted);
            evals += 1;
            if fc < worst.1.min(fr) {
                simplex[dim] = (contracted, fc);
            } else {
                // Shrink towards the best vertex.
                let best = simplex[0].0.clone();
                for vertex in simplex.iter_mut().skip(1) {
                    let x: Vec<f64> = (0..dim)
                        .map(|j| best[j] + 0.5 * (vertex.0[j] - best[j]))
                        .collect();
                    let v = eval(&x);
                    *vertex = (x, v);
                }
                evals += dim;
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex.swap_remove(0).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_a_quadratic() {
        let x = nelder_mead(
            |x| (x[0] - 1.0).powi(2) + 3.0 * (x[1] + 2.0).powi(2),
            &[0.0, 0.0],
            0.5,
            400,
        );
        assert!((x[0] - 1.0).abs() < 1e-3 && (x[1] + 2.0).abs() < 1e-3, "{x:?}");
    }
}
