//! The last cycle's figures for node_exporter's textfile collector.

use std::path::Path;

use super::state::{CycleReport, Outcome};
use crate::error::Result;
use crate::landing::durable;

/// Writes the Prometheus textfile durably, `0644`: node_exporter, another
/// user, must read it. The directory is shared with other exporters: only
/// Materia's own stale temp files are swept from it.
pub(super) fn write_textfile(path: &Path, text: &str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    durable::remove_stale_temps_in(dir, durable::STATE_TEMP_PREFIX)?;
    durable::replace_file_with_mode(path, text.as_bytes(), 0o644)
}

/// The cycle's figures in Prometheus' text exposition format.
pub(super) fn prometheus_text(cycle: &CycleReport) -> String {
    let mut out = String::from(
        "# HELP materia_step_success Whether the step succeeded in the last cycle.\n\
         # TYPE materia_step_success gauge\n",
    );
    for s in &cycle.steps {
        out.push_str(&format!(
            "materia_step_success{{step=\"{}\"}} {}\n",
            s.step,
            u8::from(s.outcome == Outcome::Ok)
        ));
    }
    out.push_str(
        "# HELP materia_step_duration_seconds Wall time of the step in the last cycle.\n\
         # TYPE materia_step_duration_seconds gauge\n",
    );
    for s in &cycle.steps {
        out.push_str(&format!(
            "materia_step_duration_seconds{{step=\"{}\"}} {:.3}\n",
            s.step,
            s.millis as f64 / 1000.0
        ));
    }
    out.push_str(&format!(
        "# HELP materia_last_cycle_timestamp_seconds When the last cycle started.\n\
         # TYPE materia_last_cycle_timestamp_seconds gauge\n\
         materia_last_cycle_timestamp_seconds {}\n",
        cycle.started_at.as_second()
    ));
    out
}
