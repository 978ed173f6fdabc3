-- model: raw.psd
-- kind: incremental
-- depends: schema
-- Appends the rows of the releases in `_new_files` (path, release_id), read by
-- DuckDB's CSV reader with explicit types: codes stay text with their zeros,
-- `NA` is a country, not a null (only empty fields are null).
INSERT INTO raw.psd
SELECT f.release_id, c.Commodity_Code, c.Commodity_Description, c.Country_Code,
       c.Country_Name, c.Market_Year, c.Calendar_Year, c.Month, c.Attribute_ID,
       c.Attribute_Description, c.Unit_ID, c.Unit_Description, c.Value
FROM read_csv({{new_files}},
        compression = 'gzip', header = true, auto_detect = false,
        delim = ',', quote = '"', escape = '"', nullstr = '',
        filename = true,
        columns = {
            'Commodity_Code': 'VARCHAR', 'Commodity_Description': 'VARCHAR',
            'Country_Code': 'VARCHAR', 'Country_Name': 'VARCHAR',
            'Market_Year': 'INTEGER', 'Calendar_Year': 'INTEGER', 'Month': 'VARCHAR',
            'Attribute_ID': 'VARCHAR', 'Attribute_Description': 'VARCHAR',
            'Unit_ID': 'VARCHAR', 'Unit_Description': 'VARCHAR', 'Value': 'DOUBLE'
        }) AS c
JOIN _new_files AS f ON f.path = c.filename;
