//! Timing a cheap in-process operation without a framework (`classify`, and the push
//! bench's CPU per push): a warm-up that also sizes the batches, then [`BATCHES`]
//! batches of about [`BATCH_TARGET`] each; the median batch gives the time per call.

use std::time::{Duration, Instant};

/// Batches per measurement.
pub const BATCHES: usize = 7;
/// How long one batch should take.
const BATCH_TARGET: Duration = Duration::from_millis(100);

/// The median time of one call of `f`.
pub fn per_call(mut f: impl FnMut()) -> Duration {
    let mut per_batch = 1u32;
    loop {
        let began = Instant::now();
        for _ in 0..per_batch {
            f();
        }
        if began.elapsed() >= BATCH_TARGET / 4 {
            let scale = BATCH_TARGET.as_secs_f64() / began.elapsed().as_secs_f64();
            per_batch = ((f64::from(per_batch) * scale) as u32).max(1);
            break;
        }
        per_batch = per_batch.saturating_mul(2);
    }
    let mut batches: Vec<Duration> = (0..BATCHES)
        .map(|_| {
            let began = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            began.elapsed() / per_batch
        })
        .collect();
    batches.sort_unstable();
    batches[BATCHES / 2]
}

/// `d` in µs.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
