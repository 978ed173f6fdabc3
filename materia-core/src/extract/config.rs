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
//! ```
//!
//! Unknown keys are rejected with their name. `psd` (the coffee file) is built in;
//! a `[datasets.psd]` table replaces it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

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
        }
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
}

impl Default for Config {
    fn default() -> Self {
        let psd = DatasetSpec::psd();
        Config {
            datasets: BTreeMap::from([(psd.name.to_string(), psd)]),
            limits: Limits::default(),
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
        for (name, d) in raw.datasets {
            let dataset: Dataset = name
                .parse()
                .map_err(|e| err(format!("datasets.{name}: {e}")))?;
            config.datasets.insert(
                name,
                DatasetSpec {
                    name: dataset,
                    url: d.url,
                    archive_url: d.archive_url,
                    header: d.header,
                    zip_member: d.zip_member,
                },
            );
        }
        Ok(config)
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
