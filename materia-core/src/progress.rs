//! Progress bars on stderr: bytes for long transfers (extract, mirror,
//! restore), releases for a transform. No colour: a template with none (and
//! indicatif's `console` honours `NO_COLOR` besides).

use indicatif::{ProgressBar, ProgressStyle};

/// Transfers smaller than this get no bar.
const MIN_BYTES: u64 = 4 << 20;

/// A bar counting `length` bytes when `show` is set and the transfer is large
/// enough; otherwise a hidden bar (every call on it is a no-op).
pub(crate) fn bytes_bar(length: Option<u64>, show: bool) -> ProgressBar {
    match length {
        Some(n) if show && n >= MIN_BYTES => {
            let bar = ProgressBar::new(n);
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        }
        _ => ProgressBar::hidden(),
    }
}

/// A bar counting a transform's `releases` when `show` is set and there is
/// more than one; otherwise a hidden bar (every call on it is a no-op).
pub(crate) fn releases_bar(releases: u64, show: bool) -> ProgressBar {
    if !show || releases < 2 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(releases);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} releases, elapsed {elapsed} eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}
