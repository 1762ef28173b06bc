//! The progress bar on stderr: live request count or time, req/s and errors, redrawn a few times a second from the
//! run's shared counters (never per request).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use crate::driver::Phase;
use crate::flags::Stop;

const REDRAW: Duration = Duration::from_millis(200);

/// A bar for one phase; dropping it without [`Progress::finish`] leaves the last frame on screen.
pub(crate) struct Progress {
    bar: ProgressBar,
    ticker: JoinHandle<()>,
}

impl Progress {
    /// Starts a bar labelled `label` for `phase`, or returns `None` when `show` is false or stderr is not a
    /// terminal. Must be called inside the runtime.
    pub(crate) fn start(show: bool, label: &str, phase: Arc<Phase>) -> Option<Progress> {
        if !show {
            return None;
        }
        let (len, template) = match phase.stop() {
            Stop::Iterations(n) => (n, "{prefix:>8} [{bar:25}] {pos}/{len} {msg}"),
            Stop::Duration(d) => (d.as_millis() as u64, "{prefix:>8} [{bar:25}] {msg}"),
        };
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        if bar.is_hidden() {
            return None;
        }
        let style = ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("=> "));
        bar.set_prefix(label.to_owned());
        let ticker = tokio::spawn(tick(bar.clone(), phase));
        Some(Progress { bar, ticker })
    }

    /// Stops redrawing and clears the bar.
    pub(crate) fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

async fn tick(bar: ProgressBar, phase: Arc<Phase>) {
    let start = Instant::now();
    let mut interval = tokio::time::interval(REDRAW);
    loop {
        interval.tick().await;
        let elapsed = start.elapsed();
        let done = phase.done.load(Relaxed);
        let failed = phase.failed.load(Relaxed);
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
        match phase.stop() {
            Stop::Iterations(_) => {
                bar.set_position(done);
                bar.set_message(format!("{rate:.0} req/s · {failed} errors"));
            }
            Stop::Duration(total) => {
                bar.set_position(elapsed.min(total).as_millis() as u64);
                bar.set_message(format!(
                    "{:.1}/{:.1} s · {done} req · {rate:.0} req/s · {failed} errors",
                    elapsed.min(total).as_secs_f64(),
                    total.as_secs_f64()
                ));
            }
        }
    }
}
