//! The training loop's progress bar: indicatif with the `progress` feature, nothing
//! without it (then [`TrainConfig::progress`](crate::train::TrainConfig::progress)
//! is ignored).

/// A bar of `total` steps, drawn only on a terminal.
pub(crate) struct Progress {
    #[cfg(feature = "progress")]
    bar: indicatif::ProgressBar,
}

impl Progress {
    /// A bar at `position` of `total` steps, or `None` when `show` is false or the
    /// crate is built without the `progress` feature.
    pub(crate) fn new(show: bool, total: u64, position: u64) -> Option<Self> {
        #[cfg(feature = "progress")]
        {
            if !show {
                return None;
            }
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} steps  {msg}  [{elapsed} < {eta}, {per_sec}]",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_position(position);
            Some(Self { bar })
        }
        #[cfg(not(feature = "progress"))]
        {
            let _ = (show, total, position);
            None
        }
    }

    /// One step done; `msg` is shown beside the bar.
    pub(crate) fn step(&self, msg: String) {
        #[cfg(feature = "progress")]
        {
            self.bar.set_message(msg);
            self.bar.inc(1);
        }
        #[cfg(not(feature = "progress"))]
        let _ = msg;
    }

    /// Removes the bar from the terminal.
    pub(crate) fn finish(self) {
        #[cfg(feature = "progress")]
        self.bar.finish_and_clear();
    }
}
