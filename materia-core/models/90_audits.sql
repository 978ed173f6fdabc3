-- model: audits
-- kind: audit
-- depends: serving.coffee_balance, serving.psd_revisions, serving.cot_coffee
-- Each statement selects the offending rows (the uniqueness checks count
-- them). `error` audits fail the build; `warn` audits are reported with their
-- count; either shows the first rows, so a failure names the country and year.

-- audit: error coffee_balance unique per country and market year
SELECT count(*) FROM (
    SELECT 1 FROM serving.coffee_balance GROUP BY country_code, market_year HAVING count(*) > 1);

-- audit: error coffee_balance has a country and market year
SELECT count(*) FROM serving.coffee_balance WHERE country_code IS NULL OR market_year IS NULL;

-- USDA's balance identities hold on every row of its coffee file (checked on a
-- real download, 6016 country-years): a row breaking one is wrong data. They
-- are checked on the countries' rows: a row lacking one of the terms (NULL:
-- the release has no such row, or it is empty) is not checked, and the World
-- row, their sum, holds when they do (it leaves out a country's missing term).

-- audit: error total supply = beginning stocks + production + imports
SELECT country_code, market_year, total_supply,
    beginning_stocks + production + imports AS beginning_stocks_production_imports
FROM serving.coffee_balance
WHERE country_code <> 'WORLD'
  AND abs(total_supply - (beginning_stocks + production + imports)) > 0.5;

-- audit: error total distribution = exports + domestic consumption + ending stocks
SELECT country_code, market_year, total_distribution,
    exports + domestic_consumption + ending_stocks AS exports_consumption_stocks
FROM serving.coffee_balance
WHERE country_code <> 'WORLD'
  AND abs(total_distribution - (exports + domestic_consumption + ending_stocks)) > 0.5;

-- audit: error production = arabica + robusta + other production
SELECT country_code, market_year, production,
    arabica_production + robusta_production + other_production AS arabica_robusta_other
FROM serving.coffee_balance
WHERE country_code <> 'WORLD'
  AND abs(production - (arabica_production + robusta_production + other_production)) > 0.5;

-- The splits USDA publishes: they hold on the real file but one row (the
-- United States' 2001 imports have no split), so they warn.

-- audit: warn exports = bean + roast & ground + soluble exports
SELECT country_code, market_year, exports,
    bean_exports + roast_ground_exports + soluble_exports AS splits
FROM serving.coffee_balance
WHERE country_code <> 'WORLD'
  AND abs(exports - (bean_exports + roast_ground_exports + soluble_exports)) > 0.5;

-- audit: warn imports = bean + roast & ground + soluble imports
SELECT country_code, market_year, imports,
    bean_imports + roast_ground_imports + soluble_imports AS splits
FROM serving.coffee_balance
WHERE country_code <> 'WORLD'
  AND abs(imports - (bean_imports + roast_ground_imports + soluble_imports)) > 0.5;

-- audit: warn domestic consumption = roast & ground + soluble consumption
SELECT country_code, market_year, domestic_consumption,
    roast_ground_domestic_consumption + soluble_domestic_consumption AS splits
FROM serving.coffee_balance
WHERE country_code <> 'WORLD'
  AND abs(domestic_consumption
          - (roast_ground_domestic_consumption + soluble_domestic_consumption)) > 0.5;

-- audit: error cot_coffee unique per report date
SELECT count(*) FROM (SELECT 1 FROM serving.cot_coffee GROUP BY report_date HAVING count(*) > 1);

-- audit: warn cot_coffee open interest covers managed money
SELECT count(*) FROM serving.cot_coffee
WHERE managed_money_long + managed_money_spread > open_interest
   OR managed_money_short + managed_money_spread > open_interest;
