//! The little CSV knowledge shared by extract and transform: reading a header.

pub use crate::guard::HeaderCheck;

/// The column names of a CSV header line: BOM, CR and surrounding quotes and
/// spaces removed; commas inside quotes kept.
///
/// ```
/// let cols = materia_core::csv::split_header(b"\xef\xbb\xbfA, \"B,C\" ,\"D\"\"E\"\r");
/// assert_eq!(cols, ["A", "B,C", "D\"E"]);
/// ```
pub fn split_header(line: &[u8]) -> Vec<String> {
    let line = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = String::from_utf8_lossy(line);
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field).trim().to_owned()),
            c => field.push(c),
        }
    }
    fields.push(field.trim().to_owned());
    fields
}

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
