//! CFTC's Commitments of Traders, disaggregated futures-only report: the
//! built-in `cot` dataset.
//!
//! CFTC publishes it weekly (Friday, positions as of Tuesday) as one zip per
//! year, `fut_disagg_txt_{YYYY}.zip`, holding `f_year.txt`: a comma-separated
//! file with a header line, market names quoted, one row per market and report
//! date, 191 columns. The current year's zip is replaced every week with the
//! weeks so far, so each landed release holds the year to date; a release lacks
//! the rows of other years, which is why the table's disposition is `merge`.

use super::spec::{Cadence, DatasetSpec};
use super::table::{Column, ColumnType, Disposition, TableSpec};
use crate::landing::Dataset;

/// The current year's file (`{YYYY}`: the current UTC year).
pub const COT_URL: &str = "https://www.cftc.gov/files/dea/history/fut_disagg_txt_{YYYY}.zip";

/// The CFTC contract market code of "COFFEE C - ICE FUTURES U.S.".
pub const COFFEE_C: &str = "083731";

/// The columns of `f_year.txt`, in order, as CFTC names them (the doubled
/// underscores of `Swap__Positions_Short_All` included).
pub fn cot_columns() -> Vec<String> {
    let mut cols: Vec<String> = [
        "Market_and_Exchange_Names",
        "As_of_Date_In_Form_YYMMDD",
        "Report_Date_as_YYYY-MM-DD",
        "CFTC_Contract_Market_Code",
        "CFTC_Market_Code",
        "CFTC_Region_Code",
        "CFTC_Commodity_Code",
    ]
    .map(String::from)
    .to_vec();
    const GROUPS: [&str; 3] = ["All", "Old", "Other"];
    const POSITIONS: [&str; 15] = [
        "Prod_Merc_Positions_Long",
        "Prod_Merc_Positions_Short",
        "Swap_Positions_Long",
        "Swap__Positions_Short",
        "Swap__Positions_Spread",
        "M_Money_Positions_Long",
        "M_Money_Positions_Short",
        "M_Money_Positions_Spread",
        "Other_Rept_Positions_Long",
        "Other_Rept_Positions_Short",
        "Other_Rept_Positions_Spread",
        "Tot_Rept_Positions_Long",
        "Tot_Rept_Positions_Short",
        "NonRept_Positions_Long",
        "NonRept_Positions_Short",
    ];
    // The trader classes, as the change, percent and trader-count columns name them.
    const CLASSES: [&str; 15] = [
        "Prod_Merc_Long",
        "Prod_Merc_Short",
        "Swap_Long",
        "Swap_Short",
        "Swap_Spread",
        "M_Money_Long",
        "M_Money_Short",
        "M_Money_Spread",
        "Other_Rept_Long",
        "Other_Rept_Short",
        "Other_Rept_Spread",
        "Tot_Rept_Long",
        "Tot_Rept_Short",
        "NonRept_Long",
        "NonRept_Short",
    ];
    for g in GROUPS {
        cols.push(format!("Open_Interest_{g}"));
        cols.extend(POSITIONS.iter().map(|p| format!("{p}_{g}")));
    }
    cols.push("Change_in_Open_Interest_All".into());
    cols.extend(CLASSES.iter().map(|c| format!("Change_in_{c}_All")));
    for g in GROUPS {
        cols.push(format!("Pct_of_Open_Interest_{g}"));
        cols.extend(CLASSES.iter().map(|c| format!("Pct_of_OI_{c}_{g}")));
    }
    for g in GROUPS {
        cols.push(format!("Traders_Tot_{g}"));
        // Non-reportable traders are not counted.
        cols.extend(
            CLASSES
                .iter()
                .filter(|c| !c.starts_with("NonRept"))
                .map(|c| format!("Traders_{c}_{g}")),
        );
    }
    for g in GROUPS {
        for kind in ["Gross", "Net"] {
            for n in [4, 8] {
                for side in ["Long", "Short"] {
                    cols.push(format!("Conc_{kind}_LE_{n}_TDR_{side}_{g}"));
                }
            }
        }
    }
    cols.extend(
        [
            "Contract_Units",
            "CFTC_Contract_Market_Code_Quotes",
            "CFTC_Market_Code_Quotes",
            "CFTC_Commodity_Code_Quotes",
            "CFTC_SubGroup_Code",
            "FutOnly_or_Combined",
        ]
        .map(String::from),
    );
    cols
}

/// The type of a COT column: the report date a DATE, codes and labels text,
/// positions, changes and trader counts BIGINT, percentages and concentration
/// ratios DOUBLE.
fn cot_type(name: &str) -> ColumnType {
    if name == "Report_Date_as_YYYY-MM-DD" {
        ColumnType::Date
    } else if name.starts_with("Pct_") || name.starts_with("Conc_") {
        ColumnType::Double
    } else if name.starts_with("Open_Interest_")
        || name.contains("_Positions_")
        || name.starts_with("Change_in_")
        || name.starts_with("Traders_")
    {
        ColumnType::Bigint
    } else {
        ColumnType::Varchar
    }
}

impl DatasetSpec {
    /// The built-in `cot` dataset: CFTC's disaggregated futures-only
    /// Commitments of Traders, the current year's file, weekly.
    ///
    /// ```
    /// use materia_core::dataset::DatasetSpec;
    /// let cot = DatasetSpec::cot();
    /// assert_eq!(cot.header.len(), 191);
    /// assert_eq!(cot.zip_member.as_deref(), Some("f_year.txt"));
    /// assert_eq!(cot.url_for_year(2026), "https://www.cftc.gov/files/dea/history/fut_disagg_txt_2026.zip");
    /// ```
    pub fn cot() -> DatasetSpec {
        let header = cot_columns();
        let table = TableSpec {
            columns: header
                .iter()
                .map(|name| Column {
                    name: name.clone(),
                    ty: cot_type(name),
                })
                .collect(),
            key: vec![
                "Report_Date_as_YYYY-MM-DD".into(),
                "CFTC_Contract_Market_Code".into(),
            ],
            disposition: Disposition::Merge,
            // CFTC writes "." where a figure does not apply.
            nulls: vec![String::new(), ".".into()],
        };
        DatasetSpec {
            name: "cot"
                .parse::<Dataset>()
                .unwrap_or_else(|_| unreachable!("`cot` is a valid name")),
            url: COT_URL.into(),
            archive_url: Some(COT_URL.into()),
            header,
            zip_member: Some("f_year.txt".into()),
            max_age: Some(Cadence::Weekly.max_age()),
            table: Some(table),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_cftcs() {
        let cols = cot_columns();
        assert_eq!(cols.len(), 191);
        let at = |name: &str| cols.iter().position(|c| c == name).expect(name);
        assert_eq!(at("Open_Interest_All"), 7);
        assert_eq!(at("M_Money_Positions_Long_All"), 13);
        assert_eq!(at("Swap__Positions_Spread_Old"), 28);
        assert_eq!(at("Change_in_Open_Interest_All"), 55);
        assert_eq!(at("Traders_Tot_All"), 119);
        assert_eq!(at("Conc_Gross_LE_4_TDR_Long_All"), 161);
        assert_eq!(cols.last().map(String::as_str), Some("FutOnly_or_Combined"));
        DatasetSpec::cot()
            .table
            .expect("table")
            .validate()
            .expect("valid");
    }
}
