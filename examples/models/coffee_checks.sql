-- model: coffee_checks
-- kind: audit
-- depends: serving.coffee_producers, serving.coffee_top_producers
-- Each statement after an `-- audit:` line selects the offending rows; none
-- passes. An `error` audit that finds rows fails the build (nothing is
-- published) and shows the first 5; a `warn` one is reported with them.

-- audit: error a country twice in a market year
SELECT market_year, country_code, count(*) AS times
FROM serving.coffee_producers
GROUP BY market_year, country_code
HAVING count(*) > 1;

-- audit: warn a share of world production outside 0..1
SELECT market_year, country_code, share_of_world
FROM serving.coffee_producers
WHERE share_of_world NOT BETWEEN 0 AND 1;

-- audit: warn the top producers view is empty
SELECT 'no rows' AS problem
WHERE NOT EXISTS (SELECT 1 FROM serving.coffee_top_producers);
