//! Nothing disappears by omission: a build that would leave out a dataset or
//! a caller's model the published build has — its config or models directory
//! not passed, a declaration or a model file removed — is refused before
//! anything is written (the history included), unless each removal is
//! confirmed ([`Removal`], `--drop`).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::declared::dataset_tables;
use super::record::{Record, USER};
use crate::error::{Error, Result};

/// A removal the caller confirms: `dataset:NAME` (the dataset's tables) or
/// `model:NAME` (a caller's model's table), as `--drop` spells it.
///
/// ```
/// use materia_core::transform::Removal;
/// let r: Removal = "dataset:weather".parse()?;
/// assert_eq!(r, Removal::Dataset("weather".into()));
/// assert_eq!(r.to_string(), "dataset:weather");
/// assert!("weather".parse::<Removal>().is_err());
/// # Ok::<(), materia_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Removal {
    /// A declared dataset: its history and serving tables.
    Dataset(String),
    /// A caller's model: the table (or view) it builds.
    Model(String),
}

impl FromStr for Removal {
    type Err = Error;

    fn from_str(s: &str) -> Result<Removal> {
        match s.split_once(':') {
            Some(("dataset", name)) if !name.is_empty() => Ok(Removal::Dataset(name.to_owned())),
            Some(("model", name)) if !name.is_empty() => Ok(Removal::Model(name.to_owned())),
            _ => Err(Error::Transform {
                reason: format!(
                    "--drop {s:?}: expected dataset:NAME or model:NAME (e.g. dataset:weather, \
                     model:serving.brazil)"
                ),
                source: None,
            }),
        }
    }
}

impl fmt::Display for Removal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Removal::Dataset(name) => write!(f, "dataset:{name}"),
            Removal::Model(name) => write!(f, "model:{name}"),
        }
    }
}

/// A dataset or model of the published build that this build leaves out,
/// with the tables that would go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Vanishing {
    /// What goes.
    pub removal: Removal,
    /// Its tables (and views, macros) in the published lakehouse.
    pub tables: Vec<String>,
    /// Whether `--drop` confirmed it.
    pub confirmed: bool,
}

/// What `this` build leaves out of the `published` one: its datasets, and
/// the caller's models that leave a table.
pub(crate) fn vanishing(
    published: &Record,
    this: &Record,
    confirmed: &[Removal],
) -> Vec<Vanishing> {
    let gone = |removal: Removal, tables: Vec<String>| Vanishing {
        confirmed: confirmed.contains(&removal),
        removal,
        tables,
    };
    let datasets = published
        .datasets
        .keys()
        .filter(|d| !this.datasets.contains_key(*d))
        .map(|d| gone(Removal::Dataset(d.clone()), dataset_tables(d)));
    let models = published
        .models
        .iter()
        .filter(|m| m.origin == USER && m.has_table() && this.model(&m.name).is_none())
        .map(|m| gone(Removal::Model(m.name.clone()), vec![m.name.clone()]));
    datasets.chain(models).collect()
}

/// Refuses a build that would leave out what the published build has,
/// unconfirmed: the error names each dataset and model with its tables, how
/// to confirm, and where the published build's declarations and models came
/// from.
pub(crate) fn check(published: &Record, this: &Record, confirmed: &[Removal]) -> Result<()> {
    let gone = vanishing(published, this, confirmed);
    for v in gone.iter().filter(|v| v.confirmed) {
        tracing::warn!(drop = %v.removal, tables = %v.tables.join(", "), "dropping, as confirmed");
    }
    for c in confirmed
        .iter()
        .filter(|c| !gone.iter().any(|v| &v.removal == *c))
    {
        tracing::warn!(
            drop = %c,
            "--drop {c} confirms nothing: the published build has no such dataset or model of \
             yours, or this build keeps it"
        );
    }
    let refused: Vec<&Vanishing> = gone.iter().filter(|v| !v.confirmed).collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(Error::Transform {
        reason: refusal(&refused, published, this),
        source: None,
    })
}

/// The refusal's text.
fn refusal(refused: &[&Vanishing], published: &Record, this: &Record) -> String {
    use std::fmt::Write;
    let mut text = String::from(
        "this build would drop what the published lakehouse has; nothing was written:\n",
    );
    for v in refused {
        let _ = writeln!(text, "  {}: {}", v.removal, v.tables.join(", "));
    }
    let (p, t) = (&published.sources, &this.sources);
    let _ = write!(
        text,
        "The published build's declarations came from {} and its models from {}; this build's \
         from {} and {}. Pass them again (--config or MATERIA_CONFIG, --models or \
         MATERIA_MODELS), or confirm with {}.",
        p.config_text(),
        p.models_text(),
        t.config_text(),
        t.models_text(),
        refused
            .iter()
            .map(|v| format!("--drop {}", v.removal))
            .collect::<Vec<_>>()
            .join(" ")
    );
    text
}
