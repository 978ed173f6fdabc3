-- model: serving.cot_coffee
-- kind: table
-- depends: serving.cot_latest
-- Coffee C futures (ICE Futures U.S.) in CFTC's disaggregated Commitments of
-- Traders, one row per report date (the Tuesday the positions are as of):
-- open interest and the managed-money (funds, CTAs) long, short, spread and net
-- positions, in contracts. Matched by CFTC contract market code 083731, not by
-- name (market names change; codes may come space-padded).
CREATE OR REPLACE TABLE serving.cot_coffee AS
SELECT report_date_as_yyyy_mm_dd AS report_date,
       trim(cftc_contract_market_code) AS contract_market_code,
       market_and_exchange_names AS market,
       open_interest_all AS open_interest,
       m_money_positions_long_all AS managed_money_long,
       m_money_positions_short_all AS managed_money_short,
       m_money_positions_spread_all AS managed_money_spread,
       m_money_positions_long_all - m_money_positions_short_all AS managed_money_net
FROM serving.cot_latest
WHERE trim(cftc_contract_market_code) = '083731'
ORDER BY report_date;
