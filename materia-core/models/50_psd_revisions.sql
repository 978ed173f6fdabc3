-- model: serving.psd_revisions
-- kind: table
-- depends: serving.psd_history
-- The revisions of each value, from the change history: one row per release in
-- which a value first appeared, changed or disappeared (`deleted`, value NULL),
-- with the change from the value before (over the versions that exist). A view:
-- it costs nothing to publish, and a filter on the key reaches the history's
-- sorted columns.
CREATE OR REPLACE VIEW serving.psd_revisions AS
SELECT commodity_code, country_code, market_year, attribute_id, attribute_description,
       release_ord, release_etag, release_year, release_month, value,
       value - lag(value) OVER series AS change, false AS deleted
FROM serving.psd_history
WHERE NOT deleted
WINDOW series AS (PARTITION BY commodity_code, country_code, market_year, attribute_id
                  ORDER BY release_ord)
UNION ALL
SELECT commodity_code, country_code, market_year, attribute_id, attribute_description,
       release_ord, release_etag, release_year, release_month, NULL, NULL, true
FROM serving.psd_history
WHERE deleted;
