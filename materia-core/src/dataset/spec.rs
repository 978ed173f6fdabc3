//! One dataset's declaration: where its releases are, what they must look
//! like, how fresh they must stay, and its table.

use std::time::Duration;

use super::table::TableSpec;
use crate::landing::Dataset;

/// What to fetch for one dataset, and what it must look like.
///
/// ```
/// use materia_core::dataset::DatasetSpec;
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

impl DatasetSpec {
    /// A dataset declared by nothing but its name and URL: any CSV header, no
    /// archives, never checked for freshness, no table (what `extract
    /// --new-dataset --url URL` fetches).
    ///
    /// ```
    /// use materia_core::dataset::DatasetSpec;
    /// let spec = DatasetSpec::new("weather".parse()?, "https://example.org/w.csv");
    /// assert!(spec.header.is_empty() && spec.table.is_none() && spec.max_age.is_none());
    /// # Ok::<(), materia_core::Error>(())
    /// ```
    pub fn new(name: Dataset, url: impl Into<String>) -> DatasetSpec {
        DatasetSpec {
            name,
            url: url.into(),
            archive_url: None,
            header: Vec::new(),
            zip_member: None,
            max_age: None,
            table: None,
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

/// How often a dataset publishes, and so how old its newest release may get.
///
/// ```
/// use std::time::Duration;
/// use materia_core::dataset::Cadence;
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
