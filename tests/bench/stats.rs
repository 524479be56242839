//! Summaries of repeated measurements: median and tail, with the sample count.

use serde_json::{Value, json};

/// p50 / p90 / p99 / max of millisecond samples (nearest-rank), with n.
pub fn summary_ms(samples: &[f64]) -> Value {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = |p: f64| -> f64 {
        if sorted.is_empty() {
            return f64::NAN;
        }
        let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[i.clamp(1, sorted.len()) - 1]
    };
    json!({
        "n": sorted.len(),
        "p50_ms": round(rank(50.0)),
        "p90_ms": round(rank(90.0)),
        "p99_ms": round(rank(99.0)),
        "max_ms": round(rank(100.0)),
        "min_ms": round(sorted.first().copied().unwrap_or(f64::NAN)),
    })
}

pub fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// `v` to two decimals (ratios, per-block counts, fractions of a millisecond).
pub fn two(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summary_ms(&samples);
        assert_eq!(s["p50_ms"], 50.0);
        assert_eq!(s["p99_ms"], 99.0);
        assert_eq!(s["max_ms"], 100.0);
        assert_eq!(summary_ms(&[7.0])["p90_ms"], 7.0);
    }
}
