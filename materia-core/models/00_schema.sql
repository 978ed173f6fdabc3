-- model: schema
-- kind: setup
-- The private history database (`{DUCKDB_PATH}.history`), written in place
-- under the transform lock. `raw.releases` is the ledger of loaded landing files
-- (dlt's `_dlt_loads`), in publication order (`ord`, per dataset). Each declared
-- dataset's change tables (`raw.{dataset}_changes`, `_closed`, `_current`) are
-- generated from its declaration (`transform/declared.rs`).
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS materia;
-- `materia.build`: the layout's version, this history's random id (a rebuilt
-- history is another one), its generation, bumped by every commit, and the
-- fingerprint of the dataset declarations it was loaded under. The published
-- file carries them as they were when it was built.
CREATE TABLE IF NOT EXISTS materia.build (
    schema_version INTEGER NOT NULL,
    history_id     VARCHAR NOT NULL,
    generation     BIGINT NOT NULL,
    tables         VARCHAR NOT NULL
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
