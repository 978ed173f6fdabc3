//! The R2 secret as a systemd credential: `LoadCredential=r2:/etc/materia/r2.env`
//! in the units that need it (root-only file; systemd hands the service a
//! private copy under `$CREDENTIALS_DIRECTORY`), so the env file the service
//! user can read holds no secret. Used by the commands that talk to the bucket
//! and by the supervisor, which passes the settings to the bucket steps only.

use std::path::Path;

use materia_core::bucket::BucketConfig;

use crate::BoxError;

/// The credential's name under `$CREDENTIALS_DIRECTORY`.
const NAME: &str = "r2";

/// The `AWS_*` settings of the `r2` credential (`KEY=VALUE` lines, `#`
/// comments), when systemd passed one; nothing otherwise. A line that is not
/// an `AWS_*` setting is an error naming it (and never echoing a value).
pub(crate) fn r2() -> Result<Vec<(String, String)>, BoxError> {
    let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") else {
        return Ok(Vec::new());
    };
    let path = Path::new(&dir).join(NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("credential {}: {e}", path.display()).into()),
    };
    parse(&text).map_err(|e| format!("credential {}: {e}", path.display()).into())
}

fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected KEY=VALUE", i + 1));
        };
        let key = key.trim().trim_start_matches("export ").trim();
        if !key.starts_with("AWS_")
            || !key
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(format!(
                "line {}: only AWS_* settings belong here, not {key:?}",
                i + 1
            ));
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        out.push((key.to_owned(), value.to_owned()));
    }
    Ok(out)
}

/// Whether the environment sets `name` to something (an empty or blank value
/// counts as unset: old `materia.env` files shipped `AWS_ACCESS_KEY_ID=`).
pub(crate) fn env_is_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !is_blank(&v))
}

/// Empty or only whitespace.
pub(crate) fn is_blank(value: &std::ffi::OsStr) -> bool {
    value.to_str().is_some_and(|v| v.trim().is_empty())
}

/// Warns once about each `AWS_*` variable set to an empty or blank value: it is
/// ignored (the credential's value, or none, is used instead).
pub(crate) fn warn_empty_aws_settings() {
    for (name, value) in std::env::vars_os() {
        if let Some(name) = name.to_str()
            && name.starts_with("AWS_")
            && is_blank(&value)
        {
            tracing::warn!(
                "{name} is set but empty: ignored; remove the line from /etc/materia/materia.env \
                 (the keys belong in /etc/materia/r2.env)"
            );
        }
    }
}

/// The bucket at `url`, with the credential's keys where the environment
/// has none (or an empty value).
pub(crate) fn bucket_config(url: impl Into<String>) -> Result<BucketConfig, BoxError> {
    warn_empty_aws_settings();
    let mut options = BucketConfig::new(url);
    for (key, value) in r2()? {
        if env_is_set(&key) {
            continue;
        }
        match key.as_str() {
            "AWS_ACCESS_KEY_ID" => options.access_key_id = Some(value),
            "AWS_SECRET_ACCESS_KEY" => options.secret_access_key = Some(value),
            "AWS_ENDPOINT" | "AWS_ENDPOINT_URL" => options.endpoint = Some(value),
            "AWS_REGION" | "AWS_DEFAULT_REGION" => options.region = Some(value),
            _ => {}
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_aws_settings_and_names_anything_else() {
        let got = parse("# R2\nAWS_ACCESS_KEY_ID=abc\n\nexport AWS_SECRET_ACCESS_KEY=\"s=cr\"\n")
            .expect("parses");
        assert_eq!(
            got,
            [
                ("AWS_ACCESS_KEY_ID".to_owned(), "abc".to_owned()),
                ("AWS_SECRET_ACCESS_KEY".to_owned(), "s=cr".to_owned())
            ]
        );
        let err = parse("AWS_ACCESS_KEY_ID=a\nLD_PRELOAD=/tmp/x.so\n").expect_err("refused");
        assert!(
            err.contains("line 2") && err.contains("LD_PRELOAD"),
            "{err}"
        );
        assert!(!err.contains("/tmp/x.so"), "never echoes a value: {err}");
        assert!(parse("no equals sign").is_err());
    }
}
