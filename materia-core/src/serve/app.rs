//! The server's shared state, which the routes (`api`) and the answering
//! machinery (`answer`) both read.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::cache::Cache;
use super::encode::Blame;
use super::query::Caps;
use crate::transform::Readers;

/// The server's shared state.
#[derive(Clone)]
pub(crate) struct App {
    pub readers: Readers,
    pub permits: Arc<Semaphore>,
    pub timeout: Duration,
    pub allow_sql: bool,
    pub cache: Arc<Cache>,
    /// Bytes one answer may take (`--max-answer-mib`).
    pub max_answer_bytes: usize,
    /// The readers' DuckDB memory limit (`--memory-limit`), for errors.
    pub memory_bytes: u64,
}

impl App {
    pub(crate) fn caps(&self, rows: Option<usize>) -> Caps {
        Caps {
            rows,
            bytes: self.max_answer_bytes,
            memory_bytes: self.memory_bytes,
        }
    }

    pub(crate) fn blame(&self, parameter: &'static str, hint: &'static str) -> Blame {
        Blame {
            parameter,
            hint,
            timeout: self.timeout,
        }
    }
}
