//! Progress of a long `stv3 replay` on standard error: a bar on a terminal
//! (notifications read of the total, rate, simulated time), otherwise a plain line at
//! most every ten seconds, so a log collects a readable trail.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use worker::winchester::replay::{Progress, ProgressFn};

/// Lines when standard error is not a terminal, at most this often.
const LINE_EVERY: Duration = Duration::from_secs(10);

/// A progress reporter for `total` notifications.
pub fn reporter(total: u64) -> ProgressFn {
    let started = Instant::now();
    if std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} notifications, {per_sec}, {msg} [{elapsed}, about {eta} left]",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        return Arc::new(move |p: &Progress| {
            bar.set_position(p.notifications);
            bar.set_message(format!(
                "simulated {}",
                p.simulated.format("%Y-%m-%d %H:%M")
            ));
            if p.notifications >= total {
                bar.finish();
            }
        });
    }
    let last = Mutex::new(started);
    Arc::new(move |p: &Progress| {
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        let done = p.notifications >= total;
        if !done && last.elapsed() < LINE_EVERY {
            return;
        }
        *last = Instant::now();
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        eprintln!(
            "replay: {}/{} notifications ({:.0}/s), {} events stored, simulated {}",
            p.notifications,
            total,
            p.notifications as f64 / secs,
            p.stored,
            p.simulated.format("%Y-%m-%d %H:%M:%S")
        );
    })
}
