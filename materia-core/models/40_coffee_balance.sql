-- model: serving.coffee_balance
-- kind: table
-- depends: serving.psd_latest
-- One row per country x market year of green coffee from the newest release, the
-- balance sheet pivoted into columns (USDA's 19 attributes, the bean / roast &
-- ground / soluble splits included), plus a World row per market year summed
-- over countries (the file has none). Ratios are computed from the (summed)
-- quantities, never summed themselves. Units: 1000 60-kg bags. USDA's identities:
-- production = arabica + robusta + other; total supply = beginning stocks +
-- production + imports; total distribution = exports + domestic consumption +
-- ending stocks (audited in 90_audits.sql).
CREATE OR REPLACE TABLE serving.coffee_balance AS
WITH countries AS (
    SELECT country_code, any_value(country_name) AS country_name, market_year,
        sum(value) FILTER (attribute_description = 'Beginning Stocks')       AS beginning_stocks,
        sum(value) FILTER (attribute_description = 'Production')             AS production,
        sum(value) FILTER (attribute_description = 'Arabica Production')     AS arabica_production,
        sum(value) FILTER (attribute_description = 'Robusta Production')     AS robusta_production,
        sum(value) FILTER (attribute_description = 'Other Production')       AS other_production,
        sum(value) FILTER (attribute_description = 'Imports')                AS imports,
        sum(value) FILTER (attribute_description = 'Bean Imports')           AS bean_imports,
        sum(value) FILTER (attribute_description = 'Roast & Ground Imports') AS roast_ground_imports,
        sum(value) FILTER (attribute_description = 'Soluble Imports')        AS soluble_imports,
        sum(value) FILTER (attribute_description = 'Exports')                AS exports,
        sum(value) FILTER (attribute_description = 'Bean Exports')           AS bean_exports,
        sum(value) FILTER (attribute_description = 'Roast & Ground Exports') AS roast_ground_exports,
        sum(value) FILTER (attribute_description = 'Soluble Exports')        AS soluble_exports,
        sum(value) FILTER (attribute_description = 'Domestic Consumption')   AS domestic_consumption,
        sum(value) FILTER (attribute_description = 'Rst,Ground Dom. Consum')
                                                           AS roast_ground_domestic_consumption,
        sum(value) FILTER (attribute_description = 'Soluble Dom. Cons.')
                                                           AS soluble_domestic_consumption,
        sum(value) FILTER (attribute_description = 'Ending Stocks')          AS ending_stocks,
        sum(value) FILTER (attribute_description = 'Total Supply')           AS total_supply,
        sum(value) FILTER (attribute_description = 'Total Distribution')     AS total_distribution
    FROM serving.psd_latest
    WHERE commodity_code = '0711100'
    GROUP BY country_code, market_year
),
world AS (
    SELECT 'WORLD' AS country_code, 'World' AS country_name, market_year,
        sum(beginning_stocks), sum(production), sum(arabica_production),
        sum(robusta_production), sum(other_production),
        sum(imports), sum(bean_imports), sum(roast_ground_imports), sum(soluble_imports),
        sum(exports), sum(bean_exports), sum(roast_ground_exports), sum(soluble_exports),
        sum(domestic_consumption), sum(roast_ground_domestic_consumption),
        sum(soluble_domestic_consumption),
        sum(ending_stocks), sum(total_supply), sum(total_distribution)
    FROM countries
    GROUP BY market_year
)
SELECT *, ending_stocks / nullif(domestic_consumption, 0) AS stocks_to_use
FROM (SELECT * FROM countries UNION ALL SELECT * FROM world);
