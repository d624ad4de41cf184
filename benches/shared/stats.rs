//! The statistics the benchmarks' tables print: nearest-rank quantiles and medians.

/// The `q`-quantile (0..=1) of `values` by nearest rank; 0 for no values.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The middle value, or the mean of the two middle values; 0 for none.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// `(min–max)` of `values`, rounded to whole numbers.
pub fn range(values: &[f64]) -> String {
    format!(
        "({:.0}–{:.0})",
        quantile(values, 0.0),
        quantile(values, 1.0)
    )
}
