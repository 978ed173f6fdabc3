-- model: schema
-- kind: setup
-- The tables the incremental loads append to. `raw.releases` is the ledger of
-- loaded landing files (dlt's `_dlt_loads`); every `raw.psd` row references its
-- release (dlt's `_dlt_load_id`).
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS serving;
CREATE TABLE IF NOT EXISTS raw.releases (
    release_id     INTEGER PRIMARY KEY,
    dataset        VARCHAR NOT NULL,
    etag           VARCHAR NOT NULL,
    landing_key    VARCHAR NOT NULL UNIQUE,
    year           SMALLINT NOT NULL,
    month          SMALLINT NOT NULL,
    landed_at      TIMESTAMPTZ,
    content_sha256 VARCHAR,
    rows           BIGINT NOT NULL,
    loaded_at      TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS raw.psd (
    release_id            INTEGER NOT NULL,
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
    value                 DOUBLE
);
-- Landing files that cannot be loaded (bad gzip, wrong header, rows DuckDB
-- cannot read): recorded once with the reason, skipped by every later build.
-- Landed files are immutable, so a fixed release lands under a new etag.
CREATE TABLE IF NOT EXISTS raw.rejected (
    landing_key    VARCHAR PRIMARY KEY,
    reason         VARCHAR NOT NULL,
    rejected_at    TIMESTAMPTZ NOT NULL
);
