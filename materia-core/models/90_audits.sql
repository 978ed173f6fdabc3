-- model: audits
-- kind: audit
-- depends: serving.coffee_balance, serving.psd_revisions
-- Each statement counts offending rows. `error` audits fail the build; `warn`
-- audits are reported with their count.

-- audit: error psd rows unique per release, commodity, country, market year, attribute
-- Sort-based: a hash aggregate over ~50k distinct groups per release is slow in
-- DuckDB 2.0 (11 s for 2.1M rows, against 0.9 s here). Adjacent equal key hashes
-- are candidates; duplicates are confirmed on the full key.
WITH keyed AS (
    SELECT hash(release_id, commodity_code, country_code, market_year, attribute_id) AS h,
           release_id, commodity_code, country_code, market_year, attribute_id
    FROM raw.psd WHERE release_id IN (SELECT release_id FROM _new_files)),
candidates AS (
    SELECT h FROM (SELECT h, lag(h) OVER (ORDER BY h) AS prev FROM keyed) WHERE h = prev)
SELECT count(*) FROM (
    SELECT 1 FROM keyed WHERE h IN (SELECT h FROM candidates)
    GROUP BY release_id, commodity_code, country_code, market_year, attribute_id
    HAVING count(*) > 1);

-- audit: error coffee_balance unique per country and market year
SELECT count(*) FROM (
    SELECT 1 FROM serving.coffee_balance GROUP BY country_code, market_year HAVING count(*) > 1);

-- audit: error coffee_balance has a country and market year
SELECT count(*) FROM serving.coffee_balance WHERE country_code IS NULL OR market_year IS NULL;

-- audit: warn total supply = beginning stocks + production + imports
SELECT count(*) FROM serving.coffee_balance
WHERE abs(total_supply - (beginning_stocks + production + imports)) > 0.5;

-- audit: warn total distribution = exports + domestic consumption + ending stocks
SELECT count(*) FROM serving.coffee_balance
WHERE abs(total_distribution - (exports + domestic_consumption + ending_stocks)) > 0.5;

-- audit: warn production = arabica + robusta production
SELECT count(*) FROM serving.coffee_balance
WHERE abs(production - (arabica_production + robusta_production)) > 0.5;
