//! Dataset declarations and extraction limits, from TOML or built in.
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

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::table::{RawTable, TableSpec};
use crate::csv::PSD_COLUMNS;
use crate::error::{Error, Result};
use crate::landing::Dataset;

/// The USDA PSD coffee bulk file.
pub const PSD_URL: &str = "https://apps.fas.usda.gov/psdonline/downloads/psd_coffee_csv.zip";

/// USDA's monthly archives of the coffee file (`{YYYY}`, `{MM}` are filled in).
pub const PSD_ARCHIVE_URL: &str =
    "https://apps.fas.usda.gov/psdonline/downloads/archives/{YYYY}/{MM}/psd_coffee_csv.zip";

/// What to fetch for one dataset, and what it must look like.
///
/// ```
/// use materia_core::extract::DatasetSpec;
/// let psd = DatasetSpec::psd();
/// assert_eq!(psd.name.as_str(), "psd");
/// assert_eq!(psd.archive_url(2024, 3).unwrap(),
///     "https://apps.fas.usda.gov/psdonline/downloads/archives/2024/03/psd_coffee_csv.zip");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetSpec {
    /// The dataset name (the first path component in the landing zone).
    pub name: Dataset,
    /// Where the current release is: `http://`, `https://` or `file://`.
    pub url: String,
    /// Template of a past release's URL, with `{YYYY}` and `{MM}`.
    pub archive_url: Option<String>,
    /// The expected CSV header, column by column; empty accepts any header.
    pub header: Vec<String>,
    /// The zip member to land; `None` takes the one `*.csv` member.
    pub zip_member: Option<String>,
    /// How old its newest release may get before `materia check` flags it;
    /// `None` is never checked. See [`Cadence`].
    pub max_age: Option<Duration>,
    /// Its table: declared, `transform` loads the dataset into the lakehouse.
    pub table: Option<TableSpec>,
}

/// How often a dataset publishes, and so how old its newest release may get.
///
/// ```
/// use std::time::Duration;
/// use materia_core::extract::Cadence;
/// let monthly: Cadence = "monthly".parse()?;
/// assert_eq!(monthly.max_age(), Duration::from_secs(45 * 86_400));
/// assert!("fortnightly".parse::<Cadence>().is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cadence {
    /// About once a month (USDA PSD, after each WASDE): 45 days allowed.
    Monthly,
    /// About once a week (CFTC Commitments of Traders): 10 days allowed.
    Weekly,
    /// Every day: 2 days allowed.
    Daily,
}

impl Cadence {
    /// The age of the newest release past which the dataset is stale.
    pub fn max_age(self) -> Duration {
        let days = match self {
            Cadence::Monthly => 45,
            Cadence::Weekly => 10,
            Cadence::Daily => 2,
        };
        Duration::from_secs(days * 86_400)
    }
}

impl std::str::FromStr for Cadence {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Cadence, String> {
        match s {
            "monthly" => Ok(Cadence::Monthly),
            "weekly" => Ok(Cadence::Weekly),
            "daily" => Ok(Cadence::Daily),
            other => Err(format!(
                "unknown cadence {other:?}: use monthly, weekly or daily (or max_age)"
            )),
        }
    }
}

impl DatasetSpec {
    /// The built-in `psd` dataset: the USDA PSD coffee bulk file.
    pub fn psd() -> DatasetSpec {
        DatasetSpec {
            name: Dataset::psd(),
            url: PSD_URL.into(),
            archive_url: Some(PSD_ARCHIVE_URL.into()),
            header: PSD_COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
            zip_member: None,
            max_age: Some(Cadence::Monthly.max_age()),
            table: Some(psd_table()),
        }
    }

    /// The URL of the current release: `url` with `{YYYY}` as `year`.
    pub fn url_for_year(&self, year: u16) -> String {
        self.url.replace("{YYYY}", &format!("{year:04}"))
    }

    /// The URL of the archived release of `year`/`month`, if the dataset has archives.
    pub fn archive_url(&self, year: u16, month: u8) -> Option<String> {
        let template = self.archive_url.as_ref()?;
        Some(
            template
                .replace("{YYYY}", &format!("{year:04}"))
                .replace("{MM}", &format!("{month:02}")),
        )
    }
}

/// The PSD bulk CSV's table: codes stay text with their zeros (`NA` is a
/// country, not a null: only empty fields are null), keyed by commodity,
/// country, market year and attribute.
fn psd_table() -> TableSpec {
    const TYPES: [&str; 12] = [
        "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "INTEGER", "INTEGER", "VARCHAR", "VARCHAR",
        "VARCHAR", "VARCHAR", "VARCHAR", "DOUBLE",
    ];
    let columns: Vec<String> = PSD_COLUMNS
        .iter()
        .zip(TYPES)
        .map(|(c, t)| format!("{c} {t}"))
        .collect();
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    TableSpec::new(
        &columns,
        &[
            "Commodity_Code",
            "Country_Code",
            "Market_Year",
            "Attribute_ID",
        ],
    )
    .unwrap_or_else(|e| unreachable!("the PSD table is valid: {e}"))
}

impl Dataset {
    fn psd() -> Dataset {
        "psd"
            .parse()
            .unwrap_or_else(|_| unreachable!("`psd` is a valid name"))
    }
}

/// Bounds on every fetch.
///
/// ```
/// use std::time::Duration;
/// let limits = materia_core::extract::Limits::default();
/// assert_eq!(limits.retries, 3);
/// assert!(limits.read_timeout <= Duration::from_secs(60));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connecting to the server.
    pub connect_timeout: Duration,
    /// Waiting for the response head, or for any next piece of the body.
    pub read_timeout: Duration,
    /// A whole download, from request to last byte.
    pub total_timeout: Duration,
    /// Bytes the server may send (compressed, as transferred).
    pub max_body_bytes: u64,
    /// Bytes of CSV a release may inflate to (zip bombs stop here).
    pub max_content_bytes: u64,
    /// Retries after a connect error, a timeout before the response, a 5xx or a 429.
    pub retries: u32,
    /// First wait between tries; doubles each time, at most 30 s (a `Retry-After`
    /// of up to 60 s is honoured instead).
    pub backoff: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            total_timeout: Duration::from_secs(30 * 60),
            max_body_bytes: 2 << 30,
            max_content_bytes: 16 << 30,
            retries: 3,
            backoff: Duration::from_secs(1),
        }
    }
}

/// The datasets materia knows and the limits it fetches them with.
///
/// ```
/// use materia_core::extract::Config;
/// let config = Config::from_toml("[limits]\nretries = 5\n", "inline")?;
/// assert_eq!(config.limits.retries, 5);
/// assert!(config.dataset("psd").is_ok());
/// let err = Config::from_toml("[limits]\nretrys = 5\n", "inline").unwrap_err();
/// assert!(err.to_string().contains("retrys"));
/// # Ok::<(), materia_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Declared datasets by name (`psd` is always there).
    pub datasets: BTreeMap<String, DatasetSpec>,
    /// Fetch limits.
    pub limits: Limits,
    /// A landed file the lakehouse lacks for longer than this makes it stale
    /// (`materia check`); default 2 hours.
    pub lakehouse_grace: Duration,
    /// The datasets a cycle fetches (`materia extract` without `--dataset`)
    /// and `materia check` expects releases of: `psd` and every dataset the
    /// TOML declares (`MATERIA_DATASETS` / `--dataset` replace the list). A
    /// built-in dataset outside it (`cot` by default) is known, not expected.
    pub fetch: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        let datasets = [DatasetSpec::psd(), DatasetSpec::cot()]
            .into_iter()
            .map(|d| (d.name.to_string(), d))
            .collect();
        Config {
            datasets,
            limits: Limits::default(),
            lakehouse_grace: Duration::from_secs(2 * 3600),
            fetch: vec!["psd".into()],
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    datasets: BTreeMap<String, RawDataset>,
    #[serde(default)]
    freshness: RawFreshness,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFreshness {
    lakehouse_grace: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    connect_timeout_secs: Option<u64>,
    read_timeout_secs: Option<u64>,
    total_timeout_secs: Option<u64>,
    max_body_bytes: Option<u64>,
    max_content_bytes: Option<u64>,
    retries: Option<u32>,
    backoff_millis: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataset {
    url: String,
    archive_url: Option<String>,
    #[serde(default)]
    header: Vec<String>,
    zip_member: Option<String>,
    cadence: Option<String>,
    max_age: Option<String>,
    table: Option<RawTable>,
}

impl Config {
    /// Reads a TOML config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            origin: path.display().to_string(),
            reason: e.to_string(),
            source: Some(Box::new(e)),
        })?;
        Config::from_toml(&text, &path.display().to_string())
    }

    /// Reads the TOML file at `path`, or the built-in config without one
    /// (`--config` / `MATERIA_CONFIG` unset).
    ///
    /// ```
    /// let config = materia_core::extract::Config::load_or_default(None)?;
    /// assert!(config.dataset("psd").is_ok());
    /// # Ok::<(), materia_core::Error>(())
    /// ```
    pub fn load_or_default(path: Option<&Path>) -> Result<Config> {
        path.map_or_else(|| Ok(Config::default()), Config::load)
    }

    /// Parses TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config> {
        let err = |reason: String| Error::Config {
            origin: origin.to_owned(),
            reason,
            source: None,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| Error::Config {
            origin: origin.to_owned(),
            reason: e.to_string(),
            source: Some(Box::new(e)),
        })?;
        let duration = |key: String, text: &str| {
            crate::supervise::parse_duration(text).map_err(|e| err(format!("{key}: {e}")))
        };
        let (r, d) = (raw.limits, Limits::default());
        let secs = Duration::from_secs;
        let mut config = Config {
            limits: Limits {
                connect_timeout: r.connect_timeout_secs.map_or(d.connect_timeout, secs),
                read_timeout: r.read_timeout_secs.map_or(d.read_timeout, secs),
                total_timeout: r.total_timeout_secs.map_or(d.total_timeout, secs),
                max_body_bytes: r.max_body_bytes.unwrap_or(d.max_body_bytes),
                max_content_bytes: r.max_content_bytes.unwrap_or(d.max_content_bytes),
                retries: r.retries.unwrap_or(d.retries),
                backoff: r.backoff_millis.map_or(d.backoff, Duration::from_millis),
            },
            ..Config::default()
        };
        if let Some(grace) = raw.freshness.lakehouse_grace {
            config.lakehouse_grace = duration("freshness.lakehouse_grace".into(), &grace)?;
        }
        for (name, d) in raw.datasets {
            let dataset: Dataset = name
                .parse()
                .map_err(|e| err(format!("datasets.{name}: {e}")))?;
            let cadence = d
                .cadence
                .map(|c| c.parse::<Cadence>())
                .transpose()
                .map_err(|e| err(format!("datasets.{name}.cadence: {e}")))?;
            let max_age = match d.max_age {
                Some(text) => Some(duration(format!("datasets.{name}.max_age"), &text)?),
                None => cadence.map(Cadence::max_age),
            };
            let builtin = config.datasets.get(&name).and_then(|b| b.table.clone());
            let table = match d.table {
                Some(raw) => Some(raw.parse(&name, origin)?),
                None => builtin,
            };
            let mut header = d.header;
            if let Some(table) = &table {
                if header.is_empty() {
                    header = table.header();
                } else if header != table.header() {
                    return Err(err(format!(
                        "datasets.{name}: header and table.columns name different columns"
                    )));
                }
            }
            // Two loaded datasets must not share their tables' names.
            if let Some(other) = config.datasets.iter().find_map(|(other, spec)| {
                (table.is_some()
                    && spec.table.is_some()
                    && other != &name
                    && spec.name.table_prefix() == dataset.table_prefix())
                .then_some(other)
            }) {
                return Err(err(format!(
                    "datasets {other:?} and {name:?} would share the lakehouse tables raw.{}_*: rename one",
                    dataset.table_prefix()
                )));
            }
            if !config.fetch.contains(&name) {
                config.fetch.push(name.clone());
            }
            config.datasets.insert(
                name,
                DatasetSpec {
                    name: dataset,
                    url: d.url,
                    archive_url: d.archive_url,
                    header,
                    zip_member: d.zip_member,
                    max_age,
                    table,
                },
            );
        }
        Ok(config)
    }

    /// Whether `transform` loads `dataset`: it is declared with a table.
    ///
    /// ```
    /// let config = materia_core::extract::Config::default();
    /// assert!(config.loads(&"psd".parse()?));
    /// assert!(config.loads(&"cot".parse()?));
    /// assert!(!config.loads(&"weather".parse()?));
    /// # Ok::<(), materia_core::Error>(())
    /// ```
    pub fn loads(&self, dataset: &Dataset) -> bool {
        self.datasets
            .get(dataset.as_str())
            .is_some_and(|d| d.table.is_some())
    }

    /// The declared tables, by dataset name (what `transform` loads).
    pub fn tables(&self) -> BTreeMap<String, TableSpec> {
        self.datasets
            .iter()
            .filter_map(|(name, d)| d.table.clone().map(|t| (name.clone(), t)))
            .collect()
    }

    /// The declared dataset `name`.
    pub fn dataset(&self, name: &str) -> Result<&DatasetSpec> {
        self.datasets.get(name).ok_or_else(|| Error::Config {
            source: None,
            origin: "datasets".into(),
            reason: format!(
                "no dataset named {name:?}; declared: {}",
                self.datasets.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })
    }
}
