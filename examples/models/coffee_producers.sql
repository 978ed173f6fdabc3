-- model: serving.coffee_producers
-- kind: table
-- depends: serving.coffee_balance
-- Each country's coffee production per market year, its share of the world's
-- and its rank (1: the largest producer), from the newest PSD release. A
-- `table` model is rebuilt each time transform publishes. Units: 1000 60-kg bags.
CREATE OR REPLACE TABLE serving.coffee_producers AS
SELECT market_year, country_code, country_name, production,
       production / sum(production) OVER (PARTITION BY market_year) AS share_of_world,
       rank() OVER (PARTITION BY market_year ORDER BY production DESC) AS production_rank
FROM serving.coffee_balance
WHERE country_code <> 'WORLD' AND production > 0;
