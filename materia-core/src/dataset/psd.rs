//! USDA's Production, Supply and Distribution data: the built-in `psd`
//! dataset, the coffee bulk file, monthly (after each WASDE report).

use super::spec::{Cadence, DatasetSpec};
use super::table::TableSpec;
use crate::landing::Dataset;

/// The USDA PSD coffee bulk file.
pub const PSD_URL: &str = "https://apps.fas.usda.gov/psdonline/downloads/psd_coffee_csv.zip";

/// USDA's monthly archives of the coffee file (`{YYYY}`, `{MM}` are filled in).
pub const PSD_ARCHIVE_URL: &str =
    "https://apps.fas.usda.gov/psdonline/downloads/archives/{YYYY}/{MM}/psd_coffee_csv.zip";

/// The columns of every PSD bulk CSV, in order.
pub const PSD_COLUMNS: [&str; 12] = [
    "Commodity_Code",
    "Commodity_Description",
    "Country_Code",
    "Country_Name",
    "Market_Year",
    "Calendar_Year",
    "Month",
    "Attribute_ID",
    "Attribute_Description",
    "Unit_ID",
    "Unit_Description",
    "Value",
];

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
