-- model: schema
-- kind: setup
-- The private history database (`{DUCKDB_PATH}.history`), written in place
-- under the transform lock. `raw.releases` is the ledger of loaded landing files
-- (dlt's `_dlt_loads`), in publication order (`ord`, per dataset);
-- `raw.psd_changes` holds each value once per change: a row is written when a
-- key (commodity, country, market year, attribute) first appears, when any of
-- its columns changes, and when it disappears (`deleted`), from release
-- `from_ord` on. Append-only: `raw.psd_closed` records the release `to_ord`
-- from which a version no longer holds, and `raw.psd_current` is the current
-- version of every key (rewritten each release: it is one release's size).
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS materia;
-- `materia.build`: the layout's version, this history's random id (a rebuilt
-- history is another one) and its generation, bumped by every commit. The
-- published file carries the three it was built from.
CREATE TABLE IF NOT EXISTS materia.build (
    schema_version INTEGER NOT NULL,
    history_id     VARCHAR NOT NULL,
    generation     BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS raw.releases (
    release_id     INTEGER PRIMARY KEY,
    dataset        VARCHAR NOT NULL,
    etag           VARCHAR NOT NULL,
    landing_key    VARCHAR NOT NULL UNIQUE,
    year           SMALLINT NOT NULL,
    month          SMALLINT NOT NULL,
    landed_at      TIMESTAMPTZ,
    content_sha256 VARCHAR,
    ord            INTEGER NOT NULL,
    rows           BIGINT NOT NULL,
    changes        BIGINT NOT NULL,
    loaded_at      TIMESTAMPTZ NOT NULL
);
-- Landing files that cannot be loaded (bad gzip, wrong header, rows DuckDB
-- cannot read, duplicate keys): recorded once with the reason, skipped by every
-- later build. Landed files are immutable, so a fixed release lands under a new etag.
CREATE TABLE IF NOT EXISTS raw.rejected (
    landing_key    VARCHAR PRIMARY KEY,
    reason         VARCHAR NOT NULL,
    rejected_at    TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS raw.psd_changes (
    commodity_code        VARCHAR NOT NULL,
    commodity_description VARCHAR,
    country_code          VARCHAR NOT NULL,
    country_name          VARCHAR,
    market_year           INTEGER NOT NULL,
    calendar_year         INTEGER,
    month                 VARCHAR,
    attribute_id          VARCHAR NOT NULL,
    attribute_description VARCHAR,
    unit_id               VARCHAR,
    unit_description      VARCHAR,
    value                 DOUBLE,
    deleted               BOOLEAN NOT NULL,
    from_ord              INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS raw.psd_current AS SELECT * FROM raw.psd_changes LIMIT 0;
CREATE TABLE IF NOT EXISTS raw.psd_closed (
    commodity_code        VARCHAR NOT NULL,
    country_code          VARCHAR NOT NULL,
    market_year           INTEGER NOT NULL,
    attribute_id          VARCHAR NOT NULL,
    from_ord              INTEGER NOT NULL,
    to_ord                INTEGER NOT NULL
);
