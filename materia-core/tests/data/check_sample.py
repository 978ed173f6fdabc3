#!/usr/bin/env python3
"""Checks psd_coffee_sample.zip against a real USDA PSD coffee download.

    python3 check_sample.py /path/to/psd_coffee_wide_dawit3000.csv

The real file is the wide pivot of psd_coffee.csv kept in the public
repository dawit3000/Data (one row per country x market year, one column per
attribute). Checked, independently of make_sample.py:

- the sample's attribute names are exactly the real file's 19, each with one
  ID and the unit `02 (1000 60 KG BAGS)`; every country-year has all 19;
- every value is the real file's value for that country, year and attribute;
- the identities hold on both, counted on every real row: production =
  arabica + robusta + other, total supply, total distribution, and the export,
  import and domestic-consumption splits (USDA's own file breaks "production =
  arabica + robusta" where Other Production is not zero, and the import split
  once);
- the layout: BOM, CRLF, the text fields quoted, codes and numbers bare,
  values with four decimals.

Exits 1 naming the first difference; prints the counts on success.
"""
import csv
import io
import re
import sys
import zipfile
from collections import defaultdict

SAMPLE = "psd_coffee_sample.zip"
HEADER = ["Commodity_Code", "Commodity_Description", "Country_Code", "Country_Name", "Market_Year",
          "Calendar_Year", "Month", "Attribute_ID", "Attribute_Description", "Unit_ID",
          "Unit_Description", "Value"]
# A data line as USDA writes it: codes bare, text quoted, a four-decimal value.
LINE = re.compile(r'^\d{7},"[^"]*",[A-Z0-9]{2},"[^"]*",\d{4},\d{4},\d{2},\d{3},"[^"]*",\d{2},"[^"]*",'
                  r'-?\d+\.\d{4}$')
# Not an identity of USDA's data: shown for its count, never required.
WITHOUT_OTHER = "production = arabica + robusta"
IDENTITIES = {
    "production = arabica + robusta + other":
        lambda v: v["Production"] - v["Arabica Production"] - v["Robusta Production"] - v["Other Production"],
    WITHOUT_OTHER:
        lambda v: v["Production"] - v["Arabica Production"] - v["Robusta Production"],
    "total supply = beginning stocks + production + imports":
        lambda v: v["Total Supply"] - v["Beginning Stocks"] - v["Production"] - v["Imports"],
    "total distribution = exports + domestic consumption + ending stocks":
        lambda v: v["Total Distribution"] - v["Exports"] - v["Domestic Consumption"] - v["Ending Stocks"],
    "exports = bean + roast & ground + soluble exports":
        lambda v: v["Exports"] - v["Bean Exports"] - v["Roast & Ground Exports"] - v["Soluble Exports"],
    "imports = bean + roast & ground + soluble imports":
        lambda v: v["Imports"] - v["Bean Imports"] - v["Roast & Ground Imports"] - v["Soluble Imports"],
    "domestic consumption = roast & ground + soluble":
        lambda v: v["Domestic Consumption"] - v["Rst,Ground Dom. Consum"] - v["Soluble Dom. Cons."],
}


def fail(message):
    sys.exit(f"check_sample.py: {message}")


def read_real(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    attributes = [c for c in rows[0] if c not in ("Country", "Year")]
    real = {(r["Country"], int(r["Year"])): {a: float(r[a]) for a in attributes} for r in rows}
    return attributes, real


def read_sample():
    with zipfile.ZipFile(SAMPLE) as z:
        names = z.namelist()
        if names != ["psd_coffee.csv"]:
            fail(f"{SAMPLE} holds {names}, not psd_coffee.csv alone")
        raw = z.read("psd_coffee.csv").decode("utf-8")
    if not raw.startswith("\ufeff"):
        fail("no UTF-8 BOM")
    lines = raw[1:].split("\r\n")
    if lines[-1] != "" or any("\n" in line for line in lines):
        fail("lines do not all end in CRLF")
    for n, line in enumerate(lines[1:-1], start=2):
        if not LINE.match(line):
            fail(f"line {n} is not in USDA's layout: {line}")
    rows = list(csv.reader(io.StringIO("\r\n".join(lines[:-1]))))
    if rows[0] != HEADER:
        fail(f"header {rows[0]}")
    return [dict(zip(HEADER, r)) for r in rows[1:]]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    attributes, real = read_real(sys.argv[1])
    sample = read_sample()
    names = {r["Attribute_Description"] for r in sample}
    if names != set(attributes) or len(names) != 19:
        fail(f"attributes differ: sample only {sorted(names - set(attributes))}, "
             f"real only {sorted(set(attributes) - names)}")
    ids = defaultdict(set)
    for r in sample:
        ids[r["Attribute_Description"]].add(r["Attribute_ID"])
        if (r["Unit_ID"], r["Unit_Description"]) != ("02", "(1000 60 KG BAGS)"):
            fail(f"unit {r['Unit_ID']} {r['Unit_Description']!r} on {r}")
        if (r["Commodity_Code"], r["Commodity_Description"]) != ("0711100", "Coffee, Green"):
            fail(f"commodity on {r}")
    if any(len(v) != 1 for v in ids.values()) or len({min(v) for v in ids.values()}) != 19:
        fail(f"IDs are not one per attribute: {dict(ids)}")
    by_key = defaultdict(dict)
    for r in sample:
        by_key[(r["Country_Name"], int(r["Market_Year"]))][r["Attribute_Description"]] = float(r["Value"])
    for (country, year), values in by_key.items():
        if len(values) != 19:
            fail(f"{country} {year} has {len(values)} attributes")
        want = real.get((country, year))
        if want is None:
            fail(f"{country} {year} is not in the real file")
        for a, v in values.items():
            if v != want[a]:
                fail(f"{country} {year} {a}: sample {v}, real {want[a]}")
    for label, rule in IDENTITIES.items():
        real_bad = sum(abs(rule(v)) > 0.5 for v in real.values())
        sample_bad = sum(abs(rule(v)) > 0.5 for v in by_key.values())
        if sample_bad and label != WITHOUT_OTHER:
            fail(f"{label}: breaks on {sample_bad} sample rows (real file: {real_bad} of {len(real)})")
        print(f"{label}: real file breaks it on {real_bad} of {len(real)} rows, the sample on {sample_bad}")
    other = sorted({c for (c, _), v in by_key.items() if v["Other Production"] > 0})
    print(f"sample: {len(sample)} rows, {len(by_key)} country-years, Other Production in {other}; "
          f"IDs {', '.join(f'{min(ids[a])} {a}' for a in sorted(ids, key=lambda a: min(ids[a])))}")


if __name__ == "__main__":
    main()
