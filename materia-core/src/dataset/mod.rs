//! Dataset declarations: what each dataset is (where its releases are, the CSV
//! header they must have, how fresh they must stay, the table `transform`
//! loads them into) and the limits every fetch stays within — read from the
//! config file or built in. Declaring needs only serde and toml: `extract`
//! fetches what is declared here, `transform`, `check` and `drill` load and
//! judge it.
//!
//! ```toml
//! [limits]
//! connect_timeout_secs = 10
//! read_timeout_secs = 60      # a stalled connection fails after this
//! total_timeout_secs = 1800   # a whole download
//! max_body_bytes = 2147483648
//! max_content_bytes = 17179869184
//! retries = 3
//! backoff_millis = 1000
//!
//! [datasets.psd_alldata]
//! url = "https://apps.fas.usda.gov/psdonline/downloads/psd_alldata_csv.zip"
//! archive_url = "https://apps.fas.usda.gov/psdonline/downloads/archives/{YYYY}/{MM}/psd_alldata_csv.zip"
//! header = ["Commodity_Code", "Commodity_Description", "..."]
//! zip_member = "psd_alldata.csv"   # optional: otherwise the one *.csv member
//! cadence = "monthly"              # optional: monthly, weekly or daily; `materia check`
//! max_age = "45d"                  # optional: overrides the cadence's allowed age
//!
//! [datasets.psd_alldata.table]     # optional: `transform` loads the dataset (see `TableSpec`)
//! columns = ["Commodity_Code VARCHAR", "...", "Value DOUBLE"]
//! key = ["Commodity_Code", "Country_Code", "Market_Year", "Attribute_ID"]
//!
//! [freshness]
//! lakehouse_grace = "2h"  # a landed file the lakehouse lacks for longer is stale
//! ```
//!
//! Unknown keys are rejected with their name. `psd` (the coffee file, monthly)
//! and `cot` (CFTC's Commitments of Traders, weekly) are built in; a
//! `[datasets.psd]` table replaces it, keeping the built-in `table` unless it
//! declares one (so pointing `psd` at the all-commodities file is two lines).
//! `url` and `archive_url` may hold `{YYYY}` (the current UTC year for `url`).
//!
//! Layout: [`Config`] (the file, `config.rs`), [`DatasetSpec`] and [`Cadence`]
//! (one dataset, `spec.rs`), [`TableSpec`] (its table, `table.rs`), [`Limits`]
//! (`limits.rs`), and the built-in datasets, `psd.rs` and `cot.rs`.

mod config;
mod cot;
mod limits;
mod psd;
mod spec;
mod table;

pub use config::Config;
pub use cot::{COFFEE_C, COT_URL, cot_columns};
pub use limits::Limits;
pub use psd::{PSD_ARCHIVE_URL, PSD_COLUMNS, PSD_URL};
pub use spec::{Cadence, DatasetSpec};
pub use table::{Column, ColumnType, Disposition, TableSpec};
