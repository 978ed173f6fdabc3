#!/usr/bin/env python3
"""Writes psd_coffee_sample.zip: a small PSD coffee release in USDA's real layout,
with USDA's real numbers.

The values come from a real USDA PSD coffee download, pivoted wide (one row per
country x market year, one column per attribute): `psd_coffee_wide.csv` of the
public repository dawit3000/Data (market years 1960-2023, 94 countries). It is
not kept here; pass its path:

    python3 make_sample.py /path/to/psd_coffee_wide_dawit3000.csv

The sample keeps 10 countries x market years 2004-2023, each country-year with
all 19 green-coffee attributes (zeros as `0.0000` rows, as USDA writes them):
Philippines has Other Production beside arabica and robusta (2004-2006),
"Korea, South" a comma in its name, Japan, Korea and the EU produce nothing.
The layout is the member of psd_coffee_csv.zip: a UTF-8 BOM, CRLF line ends,
the text fields quoted (`"Coffee, Green"`, `"Brazil"`, `"Production"`,
`"(1000 60 KG BAGS)"`), codes and numbers bare, zero-padded codes, values like
`63000.0000`, Month 00 on older rows, no World row. check_sample.py compares
the result with the real file.

Deterministic: the same input gives the same bytes.
"""
import csv
import io
import sys
import zipfile

COLUMNS = ("Commodity_Code,Commodity_Description,Country_Code,Country_Name,Market_Year,"
           "Calendar_Year,Month,Attribute_ID,Attribute_Description,Unit_ID,Unit_Description,Value")
# USDA's attribute IDs for green coffee, in ID order. The wide file has the
# names, not the IDs: these are 029 as the real row
# `0711100,"Coffee, Green",JA,"Japan",2002,2015,06,029,"Arabica Production",...`
# has it, and the rest as two independent public codebases map USDA's IDs
# (a PSD API client, attribute_descriptions; a PSD attribute census test).
ATTRIBUTES = [
    ("020", "Beginning Stocks"), ("028", "Production"), ("029", "Arabica Production"),
    ("053", "Robusta Production"), ("056", "Other Production"), ("057", "Imports"),
    ("058", "Bean Imports"), ("075", "Roast & Ground Imports"), ("082", "Soluble Imports"),
    ("086", "Total Supply"), ("088", "Exports"), ("090", "Bean Exports"),
    ("107", "Roast & Ground Exports"), ("114", "Soluble Exports"),
    ("125", "Domestic Consumption"), ("141", "Rst,Ground Dom. Consum"),
    ("154", "Soluble Dom. Cons."), ("176", "Ending Stocks"), ("178", "Total Distribution"),
]
UNIT = ("02", "(1000 60 KG BAGS)")
# USDA's (FIPS-style) country codes.
COUNTRIES = [("BR", "Brazil"), ("CO", "Colombia"), ("ET", "Ethiopia"), ("E4", "European Union"),
             ("ID", "Indonesia"), ("JA", "Japan"), ("KS", "Korea, South"), ("RP", "Philippines"),
             ("US", "United States"), ("VM", "Vietnam")]
YEARS = range(2004, 2024)


def quoted(text):
    return '"' + text.replace('"', '""') + '"'


def revised(code, year):
    """Calendar_Year and Month: 00 for old market years, else the June or
    December report after it (deterministic, not USDA's own dates)."""
    if year < 2006:
        return str(year), "00"
    month = "06" if (sum(map(ord, code)) + year) % 2 else "12"
    return str(min(year + 1, 2023)), month


def read_wide(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    names = set(rows[0]) - {"Country", "Year"}
    wanted = {name for _, name in ATTRIBUTES}
    if names != wanted:
        sys.exit(f"{path}: attributes differ: missing {sorted(wanted - names)}, "
                 f"unexpected {sorted(names - wanted)}")
    return {(r["Country"], int(r["Year"])): r for r in rows}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    wide = read_wide(sys.argv[1])
    out = io.StringIO()
    out.write("\ufeff" + COLUMNS + "\r\n")
    rows = 0
    for code, name in COUNTRIES:
        for year in YEARS:
            values = wide[(name, year)]
            calendar, month = revised(code, year)
            for attr_id, attr in ATTRIBUTES:
                value = int(values[attr])
                fields = ["0711100", quoted("Coffee, Green"), code, quoted(name), str(year), calendar,
                          month, attr_id, quoted(attr), UNIT[0], quoted(UNIT[1]), f"{value}.0000"]
                out.write(",".join(fields) + "\r\n")
                rows += 1
    data = out.getvalue().encode("utf-8")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("psd_coffee.csv", date_time=(2026, 12, 7, 14, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, data)
    with open("psd_coffee_sample.zip", "wb") as f:
        f.write(buf.getvalue())
    print(f"psd_coffee_sample.zip: {len(data)} bytes of CSV, {rows} rows")


if __name__ == "__main__":
    main()
