//! The config file: the datasets Materia knows, the limits it fetches them
//! with, and how fresh the lakehouse must stay (see the module doc of
//! [`dataset`](super) for the file's keys).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::limits::{Limits, RawLimits};
use super::spec::{Cadence, DatasetSpec};
use super::table::{RawTable, TableSpec};
use crate::error::{Error, Result};
use crate::landing::Dataset;
use crate::text::parse_duration;

/// The datasets materia knows and the limits it fetches them with.
///
/// ```
/// use materia_core::dataset::Config;
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
    /// let config = materia_core::dataset::Config::load_or_default(None)?;
    /// assert!(config.dataset("psd").is_ok());
    /// # Ok::<(), materia_core::Error>(())
    /// ```
    pub fn load_or_default(path: Option<&Path>) -> Result<Config> {
        path.map_or_else(|| Ok(Config::default()), Config::load)
    }

    /// Parses TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| Error::Config {
            origin: origin.to_owned(),
            reason: e.to_string(),
            source: Some(Box::new(e)),
        })?;
        let mut config = Config {
            limits: raw.limits.resolve(),
            ..Config::default()
        };
        if let Some(grace) = raw.freshness.lakehouse_grace {
            config.lakehouse_grace = duration(origin, "freshness.lakehouse_grace", &grace)?;
        }
        for (name, declared) in raw.datasets {
            let builtin = config.datasets.get(&name).and_then(|b| b.table.clone());
            let spec = declared.check(&name, builtin, origin)?;
            config.check_table_names(&name, &spec, origin)?;
            if !config.fetch.contains(&name) {
                config.fetch.push(name.clone());
            }
            config.datasets.insert(name, spec);
        }
        Ok(config)
    }

    /// Two loaded datasets must not share their tables' names.
    fn check_table_names(&self, name: &str, spec: &DatasetSpec, origin: &str) -> Result<()> {
        let clash = self.datasets.iter().find_map(|(other, known)| {
            (spec.table.is_some()
                && known.table.is_some()
                && other != name
                && known.name.table_prefix() == spec.name.table_prefix())
            .then_some(other)
        });
        match clash {
            Some(other) => Err(invalid(
                origin,
                format!(
                    "datasets {other:?} and {name:?} would share the lakehouse tables raw.{}_*: rename one",
                    spec.name.table_prefix()
                ),
            )),
            None => Ok(()),
        }
    }

    /// Whether `transform` loads `dataset`: it is declared with a table.
    ///
    /// ```
    /// let config = materia_core::dataset::Config::default();
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

    /// The declared dataset `name`; an undeclared one is an error naming the
    /// declared ones (and the nearest, when `name` looks like a typo of it).
    ///
    /// ```
    /// let config = materia_core::dataset::Config::default();
    /// assert_eq!(config.dataset("cot")?.name.as_str(), "cot");
    /// let err = config.dataset("psdd").unwrap_err().to_string();
    /// assert!(err.contains("no dataset named \"psdd\"") && err.contains("did you mean \"psd\""), "{err}");
    /// # Ok::<(), materia_core::Error>(())
    /// ```
    pub fn dataset(&self, name: &str) -> Result<&DatasetSpec> {
        self.datasets
            .get(name)
            .ok_or_else(|| invalid("datasets", self.undeclared(name)))
    }

    /// Refuses a dataset nobody declared — neither built in (`psd`, `cot`) nor
    /// in the config file — before `land` or `extract` starts it: a typo would
    /// otherwise land forever under its own name. The error names the dataset,
    /// the declared ones, the nearest of them when the name looks like a typo,
    /// and `--new-dataset`, the flag that starts a new dataset on purpose.
    ///
    /// ```
    /// use materia_core::dataset::Config;
    /// let config = Config::from_toml(
    ///     "[datasets.ico-prices]\nurl = \"https://example.org/ico.csv\"\n",
    ///     "materia.toml",
    /// )?;
    /// assert!(config.check_declared("ico-prices").is_ok());
    /// assert!(config.check_declared("psd").is_ok(), "built in");
    /// let err = config.check_declared("icoprices").unwrap_err().to_string();
    /// assert!(err.contains("\"icoprices\"") && err.contains("cot, ico-prices, psd"), "{err}");
    /// assert!(err.contains("did you mean \"ico-prices\"") && err.contains("--new-dataset"), "{err}");
    /// # Ok::<(), materia_core::Error>(())
    /// ```
    pub fn check_declared(&self, name: &str) -> Result<()> {
        if self.datasets.contains_key(name) {
            return Ok(());
        }
        Err(invalid(
            "datasets",
            format!(
                "{}; declare it under [datasets.{name}] in the config file (--config / \
                 MATERIA_CONFIG), or pass --new-dataset to start a new dataset named {name:?}",
                self.undeclared(name)
            ),
        ))
    }

    /// Why `name` is not a dataset: the declared ones, and the nearest.
    fn undeclared(&self, name: &str) -> String {
        let declared = self.datasets.keys().cloned().collect::<Vec<_>>().join(", ");
        let hint = nearest(name, self.datasets.keys())
            .map(|n| format!(" (did you mean {n:?}?)"))
            .unwrap_or_default();
        format!("no dataset named {name:?} is declared{hint}; declared: {declared}")
    }
}

/// The candidate `name` looks like a typo of: the nearest by edit distance
/// (`-` and `_` aside, `icoprices` is `ico-prices`), within a third of its
/// length (at least one edit).
fn nearest<'a>(name: &str, candidates: impl Iterator<Item = &'a String>) -> Option<&'a str> {
    let plain = |s: &str| -> Vec<char> { s.chars().filter(|c| !matches!(c, '-' | '_')).collect() };
    let wanted = plain(name);
    candidates
        .map(|c| {
            let got = plain(c);
            let edits = edit_distance(&wanted, &got);
            let allowed = (wanted.len().max(got.len()) / 3).max(1);
            (edits, allowed, c)
        })
        .filter(|(edits, allowed, _)| edits <= allowed)
        .min_by_key(|(edits, _, c)| (*edits, c.len()))
        .map(|(_, _, c)| c.as_str())
}

/// Levenshtein distance: insertions, deletions and substitutions.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// The config file as written.
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

/// `[freshness]` as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFreshness {
    lakehouse_grace: Option<String>,
}

/// `[datasets.NAME]` as written.
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

impl RawDataset {
    /// The checked declaration of dataset `name`; a built-in dataset's
    /// `builtin` table stays unless the TOML declares one.
    fn check(self, name: &str, builtin: Option<TableSpec>, origin: &str) -> Result<DatasetSpec> {
        let err = |reason: String| invalid(origin, reason);
        let dataset: Dataset = name
            .parse()
            .map_err(|e| err(format!("datasets.{name}: {e}")))?;
        let cadence = self
            .cadence
            .map(|c| c.parse::<Cadence>())
            .transpose()
            .map_err(|e| err(format!("datasets.{name}.cadence: {e}")))?;
        let max_age_key = format!("datasets.{name}.max_age");
        let max_age = match self.max_age {
            Some(text) => Some(duration(origin, &max_age_key, &text)?),
            None => cadence.map(Cadence::max_age),
        };
        let table = match self.table {
            Some(raw) => Some(raw.parse(name, origin)?),
            None => builtin,
        };
        let mut header = self.header;
        if let Some(table) = &table {
            if header.is_empty() {
                header = table.header();
            } else if header != table.header() {
                return Err(err(format!(
                    "datasets.{name}: header and table.columns name different columns"
                )));
            }
        }
        Ok(DatasetSpec {
            name: dataset,
            url: self.url,
            archive_url: self.archive_url,
            header,
            zip_member: self.zip_member,
            max_age,
            table,
        })
    }
}

/// A mistake in the config text `origin`.
fn invalid(origin: &str, reason: String) -> Error {
    Error::Config {
        origin: origin.to_owned(),
        reason,
        source: None,
    }
}

/// The duration setting `key`, written as `30m`, `45d`….
fn duration(origin: &str, key: &str, text: &str) -> Result<Duration> {
    parse_duration(text).map_err(|e| invalid(origin, format!("{key}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near(name: &str, candidates: &[&str]) -> Option<String> {
        let owned: Vec<String> = candidates.iter().map(|c| c.to_string()).collect();
        nearest(name, owned.iter()).map(str::to_owned)
    }

    #[test]
    fn a_typo_suggests_the_nearest_declared_name_and_a_new_name_none() {
        let declared = ["cot", "ico-prices", "psd", "psd_alldata"];
        assert_eq!(near("icoprices", &declared).as_deref(), Some("ico-prices"));
        assert_eq!(near("ico_prices", &declared).as_deref(), Some("ico-prices"));
        assert_eq!(near("ico-prise", &declared).as_deref(), Some("ico-prices"));
        assert_eq!(near("psdd", &declared).as_deref(), Some("psd"));
        assert_eq!(near("cots", &declared).as_deref(), Some("cot"));
        assert_eq!(near("weather", &declared), None);
        assert_eq!(near("notes", &declared), None);
        assert_eq!(near("x", &declared), None);
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        let d = |a: &str, b: &str| {
            edit_distance(
                &a.chars().collect::<Vec<_>>(),
                &b.chars().collect::<Vec<_>>(),
            )
        };
        assert_eq!(d("", ""), 0);
        assert_eq!(d("abc", ""), 3);
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("psd", "psd"), 0);
        assert_eq!(d("psd", "pds"), 2);
    }
}
