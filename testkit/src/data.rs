//! Generated test and benchmark data: USDA PSD coffee CSV files in the real
//! layout and ready-made landing zones. The integration tests and the
//! benchmarks (and the `psd-gen` and `landing-gen` binaries of `benches/`) all
//! draw on it, so a figure and a fixture stand on the same bytes.
//!
//! The CSV has the columns, codes and quoting of the real `psd_coffee_csv.zip`
//! member: zero-padded codes kept as text and bare (`0711100`, attribute `028`,
//! unit `02`), the text fields quoted (`"Coffee, Green"`, `"Brazil"`,
//! `"Rst,Ground Dom. Consum"`, `"(1000 60 KG BAGS)"`), values like
//! `63000.0000`, CRLF line ends, and USDA's 19 green-coffee attributes
//! ([`COFFEE_ATTRIBUTES`]) for every country and market year, balanced as
//! USDA's are. `NA` is among the country codes: a reader that takes it for a
//! null loses a country.
//!
//! ```
//! let csv = materia_testkit::psd_csv(&materia_testkit::PsdSpec { min_bytes: 10_000, seed: 7 });
//! assert!(csv.starts_with(b"Commodity_Code,"));
//! assert!(csv.len() >= 10_000);
//! ```

use std::fs;
use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;

/// The header of the PSD bulk CSV.
pub const PSD_HEADER: &str = "Commodity_Code,Commodity_Description,Country_Code,Country_Name,\
Market_Year,Calendar_Year,Month,Attribute_ID,Attribute_Description,Unit_ID,Unit_Description,Value";

const COUNTRIES: &[(&str, &str)] = &[
    ("BR", "Brazil"),
    ("VM", "Vietnam"),
    ("CO", "Colombia"),
    ("ID", "Indonesia"),
    ("ET", "Ethiopia"),
    ("HO", "Honduras"),
    ("IN", "India"),
    ("UG", "Uganda"),
    ("MX", "Mexico"),
    ("PE", "Peru"),
    ("GT", "Guatemala"),
    ("NA", "Netherlands Antilles"),
    ("E4", "European Union"),
    ("US", "United States"),
    ("JA", "Japan"),
];

/// USDA's green-coffee attributes (`Attribute_ID`, `Attribute_Description`),
/// in ID order, as the real `psd_coffee.csv` has them, every one in unit `02`
/// `(1000 60 KG BAGS)`. The IDs: 029 from a real row of the file, the others
/// as two independent public PSD codebases map them; the names are the 19
/// columns of a real download pivoted wide.
///
/// ```
/// let (id, name) = materia_testkit::COFFEE_ATTRIBUTES[4];
/// assert_eq!((id, name), ("056", "Other Production"));
/// ```
pub const COFFEE_ATTRIBUTES: [(&str, &str); 19] = [
    ("020", "Beginning Stocks"),
    ("028", "Production"),
    ("029", "Arabica Production"),
    ("053", "Robusta Production"),
    ("056", "Other Production"),
    ("057", "Imports"),
    ("058", "Bean Imports"),
    ("075", "Roast & Ground Imports"),
    ("082", "Soluble Imports"),
    ("086", "Total Supply"),
    ("088", "Exports"),
    ("090", "Bean Exports"),
    ("107", "Roast & Ground Exports"),
    ("114", "Soluble Exports"),
    ("125", "Domestic Consumption"),
    ("141", "Rst,Ground Dom. Consum"),
    ("154", "Soluble Dom. Cons."),
    ("176", "Ending Stocks"),
    ("178", "Total Distribution"),
];

/// What [`psd_csv`] generates.
#[derive(Clone, Copy, Debug)]
pub struct PsdSpec {
    /// Generate at least this many bytes (whole rows).
    pub min_bytes: usize,
    /// Different seeds give different values; the same seed the same bytes.
    pub seed: u64,
}

/// A small, fast, seeded generator (SplitMix64): deterministic data without a
/// dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The `i`-th commodity: the named ones, then synthetic codes, so a release of
/// any size (the all-commodities file has 2.2M rows) has every key once.
fn commodity(i: u64) -> (String, String) {
    match COMMODITIES.get(i as usize) {
        Some((code, name)) => ((*code).to_owned(), (*name).to_owned()),
        None => (format!("{:07}", 9_000_000 + i), format!("Commodity {i}")),
    }
}

const COMMODITIES: &[(&str, &str)] = &[
    ("0711100", "Coffee, Green"),
    ("0440000", "Corn"),
    ("0410000", "Wheat"),
    ("2222000", "Oilseed, Soybean"),
    ("0422110", "Rice, Milled"),
    ("0612000", "Sugar, Centrifugal"),
];

/// A PSD-shaped CSV of at least `spec.min_bytes` bytes, in whole country-years.
/// Rows walk commodities × market years × countries × the 19
/// [`COFFEE_ATTRIBUTES`] like the real file (the named commodities first, then
/// synthetic ones), so (commodity, country, market year, attribute) is unique
/// at any size. Each country-year balances as USDA's do (see `balance`). Values
/// depend on the country-year; market years from 2024 on (and the first
/// country-year) also depend on the seed, so releases with different seeds
/// look like USDA revising its recent estimates, and always differ.
pub fn psd_csv(spec: &PsdSpec) -> Vec<u8> {
    let mut out = Vec::with_capacity(spec.min_bytes + 4096);
    out.extend_from_slice(PSD_HEADER.as_bytes());
    out.extend_from_slice(b"\r\n");
    let (nc, ny) = (COUNTRIES.len() as u64, 67u64);
    let mut group = 0u64;
    while out.len() < spec.min_bytes {
        let (code, country) = COUNTRIES[(group % nc) as usize];
        let year = 1960 + group / nc % ny;
        let (commodity, commodity_name) = commodity(group / (nc * ny));
        let month = if year < 2000 { 0 } else { 1 + group % 12 };
        let values = balance(group, year, spec.seed);
        for ((attr, attr_name), value) in COFFEE_ATTRIBUTES.iter().zip(values) {
            let _ = write!(
                out,
                "{commodity},\"{commodity_name}\",{code},\"{country}\",{year},{year},{month:02},\
                 {attr},\"{attr_name}\",02,\"(1000 60 KG BAGS)\",{value}.0000\r\n"
            );
        }
        group += 1;
    }
    out
}

/// The 19 values of country-year `group` in [`COFFEE_ATTRIBUTES`] order,
/// balanced: production = arabica + robusta + other (other in about one
/// country-year in eight), total supply = beginning stocks + production +
/// imports = total distribution = exports + domestic consumption + ending
/// stocks, and imports, exports and domestic consumption the sums of their
/// splits. Market years from 2024 on draw on `seed`; group 0's beginning
/// stocks (and what follows from them) carry it.
fn balance(group: u64, year: u64, seed: u64) -> [u64; 19] {
    let key = if year >= 2024 {
        group ^ seed.rotate_left(17)
    } else {
        group
    };
    let mut rng = SplitMix(key);
    let mut draw = |below: u64| rng.next() % below;
    let (arabica, robusta) = (draw(40_000), draw(30_000));
    let other = if draw(8) == 0 { draw(500) } else { 0 };
    let production = arabica + robusta + other;
    let beginning = draw(20_000) + if group == 0 { seed } else { 0 };
    let (bean_imports, rg_imports, soluble_imports) = (draw(5_000), draw(300), draw(600));
    let imports = bean_imports + rg_imports + soluble_imports;
    let supply = beginning + production + imports;
    // Consumption takes at most half the supply, exports at most 60 % of the rest.
    let (rg_consumption, soluble_consumption) = (draw(supply / 3 + 1), draw(supply / 6 + 1));
    let consumption = rg_consumption + soluble_consumption;
    let rest = supply - consumption;
    let (bean_exports, rg_exports, soluble_exports) =
        (draw(rest / 2 + 1), draw(rest / 20 + 1), draw(rest / 20 + 1));
    let exports = bean_exports + rg_exports + soluble_exports;
    let ending = rest - exports;
    [
        beginning,
        production,
        arabica,
        robusta,
        other,
        imports,
        bean_imports,
        rg_imports,
        soluble_imports,
        supply,
        exports,
        bean_exports,
        rg_exports,
        soluble_exports,
        consumption,
        rg_consumption,
        soluble_consumption,
        ending,
        exports + consumption + ending,
    ]
}

/// Fills `root` with `files` landed-looking files (`psd/{year}/{month}/{n}.csv.gzip`,
/// each a tiny valid gzip) without going through the store: a fixture for
/// benchmarking `open` and lookups at scale, built in seconds instead of paying
/// two fsyncs per file.
pub fn synthetic_landing_zone(root: &Path, files: usize) -> std::io::Result<()> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(PSD_HEADER.as_bytes())?;
    let body = gz.finish()?;
    for i in 0..files {
        let year = 1950 + (i / 12_000) % 8000;
        let month = 1 + (i / 1000) % 12;
        let dir = root.join(format!("psd/{year:04}/{month:02}"));
        if i % 1000 == 0 {
            fs::create_dir_all(&dir)?;
        }
        fs::write(dir.join(format!("etag-{i:08}.csv.gzip")), &body)?;
    }
    Ok(())
}

/// Lands generated release `k` of about `bytes` bytes in `store`: seed `k`,
/// etag `r{k:04}`, month `k` counted from January 2000.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let store = materia_core::landing::LandingStore::open(dir.path()).unwrap();
/// let landed = materia_testkit::land_psd_release(&store, 13, 10_000).unwrap();
/// assert_eq!(landed.landed().unwrap().key.to_string(), "psd/2001/02/r0013.csv.gzip");
/// ```
pub fn land_psd_release(
    store: &materia_core::landing::LandingStore,
    k: u64,
    bytes: usize,
) -> materia_core::Result<materia_core::landing::PutOutcome> {
    let release = materia_core::landing::NewRelease::new(
        "psd".parse()?,
        2000 + (k / 12) as i64,
        1 + (k % 12) as i64,
    )?
    .with_etag(Some(format!("r{k:04}").parse()?));
    let body = psd_csv(&PsdSpec {
        min_bytes: bytes,
        seed: k,
    });
    store.put(release, &body[..])
}

/// Lands `releases` monthly PSD releases of about `bytes_per_release` bytes each
/// in a store at `root` ([`land_psd_release`] for `k` in `1..=releases`), at gzip
/// level 1. The transform and mirror benchmarks, `transform-scale gen` and
/// `benches/compare.sh` (through the `landing-gen` binary) build on it.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let store = materia_testkit::psd_landing_zone(dir.path(), 2, 10_000).unwrap();
/// assert_eq!(store.list().len(), 2);
/// ```
pub fn psd_landing_zone(
    root: &Path,
    releases: u64,
    bytes_per_release: usize,
) -> materia_core::Result<materia_core::landing::LandingStore> {
    let store = materia_core::landing::LandingStore::open(root)?.with_compression(1);
    for k in 1..=releases {
        let _ = land_psd_release(&store, k, bytes_per_release)?;
    }
    Ok(store)
}
