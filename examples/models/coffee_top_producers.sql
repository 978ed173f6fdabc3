-- model: serving.coffee_top_producers
-- kind: view
-- depends: serving.coffee_producers
-- The ten largest producers of the newest market year. A `view` costs nothing
-- to publish: it is computed when read, from the published file's tables (not
-- the history, which readers do not have).
CREATE OR REPLACE VIEW serving.coffee_top_producers AS
SELECT market_year, production_rank, country_code, country_name, production, share_of_world
FROM serving.coffee_producers
WHERE market_year = (SELECT max(market_year) FROM serving.coffee_producers)
  AND production_rank <= 10;
