#!/usr/bin/env python3
"""Writes psd_coffee_sample.zip: a small, real-shaped PSD coffee release.

The numbers are synthetic (seeded) but consistent: for every country and market
year, total supply = beginning stocks + production + imports, production =
arabica + robusta, total distribution = exports + domestic consumption + ending
stocks, and ending stocks carry over as the next year's beginning stocks. The
shape follows the real psd_coffee_csv.zip member: a UTF-8 BOM, CRLF line ends,
zero-padded codes, values like 63000.0000, quotes only where a comma needs them
("Coffee, Green", "Rst,Ground Dom. Consum"), Month 00 on older rows, NA
(Netherlands Antilles) as a country, and no World row.

Run: python3 make_sample.py   (deterministic: same bytes every time)
"""
import io
import random
import zipfile

COLUMNS = ("Commodity_Code,Commodity_Description,Country_Code,Country_Name,Market_Year,"
           "Calendar_Year,Month,Attribute_ID,Attribute_Description,Unit_ID,Unit_Description,Value")
COUNTRIES = [("BR", "Brazil", 55000, 0.7), ("VM", "Vietnam", 28000, 0.03), ("CO", "Colombia", 12500, 1.0),
             ("ID", "Indonesia", 10500, 0.15), ("ET", "Ethiopia", 8000, 1.0), ("HO", "Honduras", 6000, 1.0),
             ("UG", "Uganda", 6500, 0.2), ("NA", "Netherlands Antilles", 0, 1.0),
             ("E4", "European Union", 0, 1.0), ("US", "United States", 0, 1.0)]
ATTRS = [("020", "Beginning Stocks"), ("028", "Production"), ("029", "Arabica Production"),
         ("030", "Robusta Production"), ("057", "Imports"), ("086", "Total Supply"),
         ("088", "Exports"), ("125", "Domestic Consumption"), ("126", "Rst,Ground Dom. Consum"),
         ("176", "Ending Stocks"), ("178", "Total Distribution")]


def field(text):
    return f'"{text}"' if "," in text else text


def main():
    rng = random.Random(2026)
    out = io.StringIO()
    out.write("\ufeff" + COLUMNS + "\r\n")
    for code, name, base, arabica_share in COUNTRIES:
        stocks = base // 5 if base else rng.randint(0, 8000) if code != "NA" else 0
        for year in range(1998, 2027):
            production = int(base * (0.8 + 0.4 * rng.random())) if base else 0
            arabica = int(production * arabica_share)
            robusta = production - arabica
            if base:
                imports = rng.randint(0, 900)
                consumption = int(production * 0.25) + rng.randint(0, 500)
            else:
                imports = 0 if code == "NA" else rng.randint(20000, 48000)
                consumption = 0 if code == "NA" else int(imports * 0.9)
            supply = stocks + production + imports
            exports = max(0, supply - consumption - max(0, stocks + rng.randint(-800, 800)))
            ending = supply - exports - consumption
            values = {"020": stocks, "028": production, "029": arabica, "030": robusta, "057": imports,
                      "086": supply, "088": exports, "125": consumption, "126": int(consumption * 0.9),
                      "176": ending, "178": exports + consumption + ending}
            month = "00" if year < 2006 else f"{rng.randint(1, 12):02d}"
            for attr_id, attr in ATTRS:
                row = ["0711100", field("Coffee, Green"), code, name, str(year), str(year), month,
                       attr_id, field(attr), "02", "(1000 60 KG BAGS)", f"{values[attr_id]}.0000"]
                out.write(",".join(row) + "\r\n")
            stocks = ending
    data = out.getvalue().encode("utf-8")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("psd_coffee.csv", date_time=(2026, 11, 10, 14, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, data)
    with open("psd_coffee_sample.zip", "wb") as f:
        f.write(buf.getvalue())
    rows = data.count(b"\r\n") - 1
    print(f"psd_coffee_sample.zip: {len(data)} bytes of CSV, {rows} rows")


if __name__ == "__main__":
    main()
