-- model: audits
-- kind: audit
-- depends: serving.coffee_balance, serving.psd_revisions, serving.cot_coffee
-- Each statement counts offending rows. `error` audits fail the build; `warn`
-- audits are reported with their count.

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

-- audit: error cot_coffee unique per report date
SELECT count(*) FROM (SELECT 1 FROM serving.cot_coffee GROUP BY report_date HAVING count(*) > 1);

-- audit: warn cot_coffee open interest covers managed money
SELECT count(*) FROM serving.cot_coffee
WHERE managed_money_long + managed_money_spread > open_interest
   OR managed_money_short + managed_money_spread > open_interest;
