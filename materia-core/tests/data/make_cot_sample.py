#!/usr/bin/env python3
"""Writes cot_disagg_sample.zip: a small, real-shaped CFTC disaggregated
futures-only Commitments of Traders release (the yearly fut_disagg_txt_YYYY.zip).

The shape follows CFTC's f_year.txt: one comma-separated member with a header
line of 191 columns (the doubled underscores of Swap__Positions_Short_All
included), market names quoted, contract units quoted where they hold a comma
("(CONTRACTS OF 37,500 POUNDS)"), the *_Quotes columns holding codes in single
quotes, a space-padded contract market code (Coffee C's), "." where a figure
does not apply (no change in a market's first week), CRLF line ends, newest
report date first. The numbers are synthetic (seeded) but consistent: each
class's long/short within open interest, Old + Other = All, changes the
difference from the week before, percentages of open interest.

Run: python3 make_cot_sample.py   (deterministic: same bytes every time)
"""
import datetime
import io
import random
import zipfile

GROUPS = ["All", "Old", "Other"]
POSITIONS = ["Prod_Merc_Positions_Long", "Prod_Merc_Positions_Short", "Swap_Positions_Long",
             "Swap__Positions_Short", "Swap__Positions_Spread", "M_Money_Positions_Long",
             "M_Money_Positions_Short", "M_Money_Positions_Spread", "Other_Rept_Positions_Long",
             "Other_Rept_Positions_Short", "Other_Rept_Positions_Spread", "Tot_Rept_Positions_Long",
             "Tot_Rept_Positions_Short", "NonRept_Positions_Long", "NonRept_Positions_Short"]
CLASSES = ["Prod_Merc_Long", "Prod_Merc_Short", "Swap_Long", "Swap_Short", "Swap_Spread",
           "M_Money_Long", "M_Money_Short", "M_Money_Spread", "Other_Rept_Long", "Other_Rept_Short",
           "Other_Rept_Spread", "Tot_Rept_Long", "Tot_Rept_Short", "NonRept_Long", "NonRept_Short"]


def columns():
    cols = ["Market_and_Exchange_Names", "As_of_Date_In_Form_YYMMDD", "Report_Date_as_YYYY-MM-DD",
            "CFTC_Contract_Market_Code", "CFTC_Market_Code", "CFTC_Region_Code", "CFTC_Commodity_Code"]
    for g in GROUPS:
        cols += [f"Open_Interest_{g}"] + [f"{p}_{g}" for p in POSITIONS]
    cols += ["Change_in_Open_Interest_All"] + [f"Change_in_{c}_All" for c in CLASSES]
    for g in GROUPS:
        cols += [f"Pct_of_Open_Interest_{g}"] + [f"Pct_of_OI_{c}_{g}" for c in CLASSES]
    for g in GROUPS:
        cols += [f"Traders_Tot_{g}"] + [f"Traders_{c}_{g}" for c in CLASSES if not c.startswith("NonRept")]
    for g in GROUPS:
        cols += [f"Conc_{k}_LE_{n}_TDR_{s}_{g}" for k in ("Gross", "Net") for n in (4, 8) for s in ("Long", "Short")]
    cols += ["Contract_Units", "CFTC_Contract_Market_Code_Quotes", "CFTC_Market_Code_Quotes",
             "CFTC_Commodity_Code_Quotes", "CFTC_SubGroup_Code", "FutOnly_or_Combined"]
    return cols


# (name, contract market code as written, market code, commodity code, units, open interest)
MARKETS = [
    ("COFFEE C - ICE FUTURES U.S.", "083731 ", "ICUS", "083", "(CONTRACTS OF 37,500 POUNDS)", 210000),
    ("COCOA - ICE FUTURES U.S.", "073732", "ICUS", "073", "(CONTRACTS OF 10 METRIC TONS)", 190000),
    ("SUGAR NO. 11 - ICE FUTURES U.S.", "080732", "ICUS", "080", "(CONTRACTS OF 112,000 POUNDS)", 900000),
    ("COTTON NO. 2 - ICE FUTURES U.S.", "033661", "ICUS", "033", "(CONTRACTS OF 50,000 POUNDS)", 250000),
    ("WHEAT-SRW - CHICAGO BOARD OF TRADE", "001602", "CBT", "001", "(CONTRACTS OF 5,000 BUSHELS)", 400000),
    ("GOLD - COMMODITY EXCHANGE INC.", "088691", "CMX", "088", "(CONTRACTS OF 100 TROY OUNCES)", 500000),
]
WEEKS = 12


def quote(field):
    return '"' + field.replace('"', '""') + '"' if ("," in field or '"' in field) else field


def positions(rng, oi):
    """The 15 position figures of one group, consistent with its open interest."""
    pm_l, pm_s = int(oi * rng.uniform(0.15, 0.3)), int(oi * rng.uniform(0.3, 0.45))
    sw_l, sw_s, sw_sp = int(oi * rng.uniform(0.05, 0.15)), int(oi * rng.uniform(0.02, 0.08)), int(oi * rng.uniform(0.0, 0.03))
    mm_l, mm_s, mm_sp = int(oi * rng.uniform(0.1, 0.3)), int(oi * rng.uniform(0.03, 0.15)), int(oi * rng.uniform(0.03, 0.08))
    or_l, or_s, or_sp = int(oi * rng.uniform(0.03, 0.08)), int(oi * rng.uniform(0.02, 0.06)), int(oi * rng.uniform(0.02, 0.05))
    tot_l = pm_l + sw_l + sw_sp + mm_l + mm_sp + or_l + or_sp
    tot_s = pm_s + sw_s + sw_sp + mm_s + mm_sp + or_s + or_sp
    return [pm_l, pm_s, sw_l, sw_s, sw_sp, mm_l, mm_s, mm_sp, or_l, or_s, or_sp, tot_l, tot_s,
            oi - tot_l, oi - tot_s]


def rows():
    rng = random.Random(20260113)
    first = datetime.date(2026, 1, 6)
    out = []
    for name, code, mcode, ccode, units, base in MARKETS:
        prev = None
        oi = base
        for w in range(WEEKS):
            day = first + datetime.timedelta(weeks=w)
            oi = int(oi * rng.uniform(0.96, 1.04))
            groups = {}
            old = int(oi * rng.uniform(0.75, 0.9))
            for g, g_oi in (("All", oi), ("Old", old), ("Other", oi - old)):
                groups[g] = [g_oi] + positions(rng, g_oi)
            alls = groups["All"]
            change = ["."] * 16 if prev is None else [str(a - b) for a, b in zip(alls, prev)]
            prev = alls
            pct = []
            for g in GROUPS:
                vals = groups[g]
                pct += ["100.0"] + [f"{100.0 * v / vals[0]:.1f}" for v in vals[1:]]
            traders = []
            for g in GROUPS:
                counts = [rng.randint(3, 40) for _ in range(13)]
                traders += [str(sum(counts) // 2)] + [str(c) for c in counts]
            conc = [f"{rng.uniform(5, 60):.1f}" for _ in range(24)]
            fields = ['"' + name + '"', day.strftime("%y%m%d"), day.isoformat(), code, mcode, "0", ccode]
            for g in GROUPS:
                fields += [str(v) for v in groups[g]]
            fields += change + pct + traders + conc
            fields += [quote(units), f"'{code.strip()}'", f"'{mcode}'", f"'{ccode}'", "A10", "FutOnly"]
            out.append((day, name, fields))
    # CFTC lists the newest report date first.
    out.sort(key=lambda r: (-r[0].toordinal(), r[1]))
    return [r[2] for r in out]


def main():
    cols = columns()
    assert len(cols) == 191, len(cols)
    lines = [",".join(cols)] + [",".join(f) for f in rows()]
    assert all(len(l.split(",")) >= 191 for l in lines)
    data = ("\r\n".join(lines) + "\r\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("f_year.txt", date_time=(2026, 3, 27, 15, 30, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, data)
    with open("cot_disagg_sample.zip", "wb") as f:
        f.write(buf.getvalue())


if __name__ == "__main__":
    main()
