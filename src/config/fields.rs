//! Checks of single values that several sections share: durations, sizes, counts, field paths,
//! string lists, header names, environment variable names and secret sources.

use std::fmt;
use std::time::Duration;

use http::HeaderName;
use toml::Spanned;

use super::raw::Scalar;
use super::report::Report;
use crate::notation::{format_size, parse_duration, parse_size};
use crate::policy::cacheability::is_hop_by_hop;

/// Where a secret comes from. Secrets are read at start, never stored in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable holding the secret.
    Env(String),
    /// A file holding the secret (trailing newline ignored), e.g. a mounted Kubernetes secret.
    File(std::path::PathBuf),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(name) => write!(f, "env {name}"),
            SecretSource::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

pub(super) fn env_name(name: &str) -> Result<String, String> {
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(name.to_string())
    } else {
        Err(format!(
            "\"{name}\" is not an environment variable name (letters, digits and _)"
        ))
    }
}

/// A claim or JSON field name, possibly a dotted path such as `organization.id`.
pub(super) fn dotted_field(
    report: &mut Report<'_>,
    field: Option<Spanned<String>>,
    key: &str,
    default: Option<&str>,
) -> Option<String> {
    let Some(field) = field else {
        return default.map(str::to_string);
    };
    let span = field.span();
    let text = field.into_inner();
    let result = if text.is_empty() || text.split('.').any(str::is_empty) {
        Err(format!(
            "invalid field path \"{text}\": use a name or dotted names such as \"organization.id\""
        ))
    } else {
        Ok(text)
    };
    report.check(span, key, result)
}

/// A string or a list of strings; absent means an empty list.
pub(super) fn string_list_field(
    report: &mut Report<'_>,
    field: Option<Spanned<toml::Value>>,
    key: &str,
) -> Option<Vec<String>> {
    let Some(field) = field else {
        return Some(Vec::new());
    };
    let shape = || "expected a string or a list of strings".to_string();
    let result = match field.get_ref() {
        toml::Value::String(s) if s.is_empty() => Err("must not be empty".to_string()),
        toml::Value::String(s) => Ok(vec![s.clone()]),
        toml::Value::Array(items) if items.is_empty() => {
            Err("is empty; leave it out to skip the check".to_string())
        }
        toml::Value::Array(items) => items
            .iter()
            .map(|v| match v.as_str() {
                Some("") => Err("must not hold empty strings".to_string()),
                Some(s) => Ok(s.to_string()),
                None => Err(shape()),
            })
            .collect(),
        _ => Err(shape()),
    };
    report.check(field.span(), key, result)
}

/// `key_env` / `key_file`, at most one; `default_env` when neither is given.
pub(super) fn secret_source(
    report: &mut Report<'_>,
    section: &str,
    (env_key, env): (&str, Option<Spanned<String>>),
    (file_key, file): (&str, Option<Spanned<String>>),
    default_env: &str,
) -> Option<SecretSource> {
    match (env, file) {
        (Some(_), Some(file)) => {
            report.at(
                file.span(),
                format!("{section}.{file_key}"),
                format!("give either {env_key} or {file_key}, not both"),
            );
            None
        }
        (Some(env), None) => report.check(
            env.span(),
            format!("{section}.{env_key}"),
            env_name(env.get_ref()).map(SecretSource::Env),
        ),
        (None, Some(file)) => {
            let span = file.span();
            let path = file.into_inner();
            report.check(
                span,
                format!("{section}.{file_key}"),
                if path.is_empty() {
                    Err("must not be empty".to_string())
                } else {
                    Ok(SecretSource::File(path.into()))
                },
            )
        }
        (None, None) => Some(SecretSource::Env(default_env.to_string())),
    }
}

pub(super) fn duration_of(value: &Scalar) -> Result<Duration, String> {
    match value {
        Scalar::Str(text) => parse_duration(text),
        Scalar::Int(n) => parse_duration(&n.to_string()),
    }
}

pub(super) fn size_of(value: &Scalar) -> Result<u64, String> {
    match value {
        Scalar::Str(text) => parse_size(text),
        Scalar::Int(n) => {
            u64::try_from(*n).map_err(|_| format!("invalid size {n}: must not be negative"))
        }
    }
}

/// A duration key with its default; `positive` refuses zero.
pub(super) fn duration_field(
    report: &mut Report<'_>,
    field: Option<Spanned<Scalar>>,
    key: &str,
    default: Duration,
    positive: bool,
) -> Option<Duration> {
    let Some(field) = field else {
        return Some(default);
    };
    let span = field.span();
    let result = duration_of(field.get_ref()).and_then(|d| {
        if positive && d.is_zero() {
            Err("must be greater than zero".to_string())
        } else {
            Ok(d)
        }
    });
    report.check(span, key, result)
}

pub(super) fn size_field(
    report: &mut Report<'_>,
    field: Option<Spanned<Scalar>>,
    key: &str,
    default: u64,
    minimum: u64,
) -> Option<u64> {
    let Some(field) = field else {
        return Some(default);
    };
    let span = field.span();
    let result = size_of(field.get_ref()).and_then(|n| {
        if n < minimum {
            Err(format!("must be at least {}", format_size(minimum)))
        } else {
            Ok(n)
        }
    });
    report.check(span, key, result)
}

pub(super) fn count_field(
    report: &mut Report<'_>,
    field: Option<Spanned<i64>>,
    key: &str,
    default: usize,
    minimum: usize,
) -> Option<usize> {
    let Some(field) = field else {
        return Some(default);
    };
    let span = field.span();
    let n = *field.get_ref();
    let result = usize::try_from(n)
        .ok()
        .filter(|n| *n >= minimum)
        .ok_or_else(|| format!("must be at least {minimum}, not {n}"));
    report.check(span, key, result)
}

/// A request header name usable in the key; hop-by-hop headers describe the connection only.
pub(super) fn header_name(text: &str, role: &str) -> Result<HeaderName, String> {
    let name = HeaderName::from_bytes(text.as_bytes())
        .map_err(|_| format!("invalid {role} header name \"{text}\""))?;
    if is_hop_by_hop(&name) {
        return Err(format!(
            "\"{text}\" is a hop-by-hop header and cannot be used as a {role} header"
        ));
    }
    Ok(name)
}

/// `<section>.tls_cert` / `<section>.tls_key`: both or neither; the files are read and checked
/// here (PEM, the key matching the certificate), each problem at the key of the file at fault.
pub(super) fn tls_files(
    report: &mut Report<'_>,
    section: &str,
    cert: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
) -> Option<Option<crate::tls::TlsFiles>> {
    use crate::tls::{load_certified_key, TlsError, TlsFiles};
    let (cert, key) = match (cert, key) {
        (None, None) => return Some(None),
        (Some(cert), None) => {
            report.at(
                cert.span(),
                format!("{section}.tls_cert"),
                format!("is set without {section}.tls_key; give both, or neither for plain HTTP"),
            );
            return None;
        }
        (None, Some(key)) => {
            report.at(
                key.span(),
                format!("{section}.tls_key"),
                format!("is set without {section}.tls_cert; give both, or neither for plain HTTP"),
            );
            return None;
        }
        (Some(cert), Some(key)) => (cert, key),
    };
    let mut empty = false;
    for (name, value) in [("tls_cert", &cert), ("tls_key", &key)] {
        if value.get_ref().is_empty() {
            report.at(
                value.span(),
                format!("{section}.{name}"),
                "must not be empty",
            );
            empty = true;
        }
    }
    if empty {
        return None;
    }
    let files = TlsFiles {
        cert: cert.get_ref().into(),
        key: key.get_ref().into(),
    };
    match load_certified_key(&files) {
        Ok(_) => Some(Some(files)),
        Err(err) => {
            let at_key = match &err {
                TlsError::Read { path, .. } => *path == files.key,
                TlsError::BadKey { .. } | TlsError::Mismatch { .. } => true,
                _ => false,
            };
            let (span, name) = if at_key {
                (key.span(), "tls_key")
            } else {
                (cert.span(), "tls_cert")
            };
            report.at(span, format!("{section}.{name}"), err.to_string());
            None
        }
    }
}
