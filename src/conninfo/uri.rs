//! `postgresql://` URIs, read as libpq reads them (`conninfo_uri_parse_options`):
//! `[user[:password]@][host][:port][,host[:port]...][/dbname][?keyword=value&...]`, every part
//! percent-decoded, IPv6 hosts in brackets, several hosts joined into one comma-separated
//! `host` (and `port`) value.

use super::{ConnInfo, ConnInfoError};

/// Parses what follows the URI's `scheme` into `info`.
pub(super) fn parse(scheme: &str, uri: &str, info: &mut ConnInfo) -> Result<(), ConnInfoError> {
    let full = || format!("{scheme}{uri}");
    let b = uri.as_bytes();
    let mut p = 0;
    // Credentials: everything before an `@` that comes before any `/`.
    let at = b.iter().position(|&c| c == b'@' || c == b'/');
    if let Some(at) = at.filter(|&i| b[i] == b'@') {
        let cred = &uri[..at];
        let (user, password) = match cred.find(':') {
            Some(i) => (&cred[..i], Some(&cred[i + 1..])),
            None => (cred, None),
        };
        if !user.is_empty() {
            info.set("user", decode(user)?)?;
        }
        if let Some(pw) = password.filter(|pw| !pw.is_empty()) {
            info.set("password", decode(pw)?)?;
        }
        p = at + 1;
    }
    // Hosts and ports, separated by commas.
    let (mut hosts, mut ports) = (String::new(), String::new());
    let mut stop;
    loop {
        let host;
        if b.get(p) == Some(&b'[') {
            let start = p + 1;
            let Some(len) = b[start..].iter().position(|&c| c == b']') else {
                return Err(ConnInfoError::InvalidUri(format!(
                    "end of string reached when looking for matching \"]\" in IPv6 host address in URI: \"{}\"",
                    full()
                )));
            };
            if len == 0 {
                return Err(ConnInfoError::InvalidUri(format!(
                    "IPv6 host address may not be empty in URI: \"{}\"",
                    full()
                )));
            }
            host = &uri[start..start + len];
            p = start + len + 1;
            if let Some(&c) = b.get(p) {
                if !matches!(c, b':' | b'/' | b'?' | b',') {
                    let shown = uri[p..].chars().next().unwrap_or_default();
                    return Err(ConnInfoError::InvalidUri(format!(
                        "unexpected character \"{shown}\" at position {} in URI (expected \":\" or \"/\"): \"{}\"",
                        p + scheme.len() + 1,
                        full()
                    )));
                }
            }
        } else {
            let start = p;
            p += until(&b[p..], b":/?,");
            host = &uri[start..p];
        }
        hosts.push_str(host);
        stop = b.get(p).copied();
        if stop == Some(b':') {
            let start = p + 1;
            p = start + until(&b[start..], b"/?,");
            ports.push_str(&uri[start..p]);
            stop = b.get(p).copied();
        }
        if stop != Some(b',') {
            break;
        }
        p += 1;
        hosts.push(',');
        ports.push(',');
    }
    if !hosts.is_empty() {
        info.set("host", decode(&hosts)?)?;
    }
    if !ports.is_empty() {
        info.set("port", decode(&ports)?)?;
    }
    // The database name, after a `/`.
    if stop == Some(b'/') {
        let start = p + 1;
        p = start + until(&b[start..], b"?");
        if p > start {
            info.set("dbname", decode(&uri[start..p])?)?;
        }
        stop = b.get(p).copied();
    }
    // Query parameters, after a `?`.
    if stop.is_some() {
        params(&uri[p + 1..], info)?;
    }
    Ok(())
}

/// `keyword=value` pairs separated by `&`.
fn params(mut s: &str, info: &mut ConnInfo) -> Result<(), ConnInfoError> {
    while !s.is_empty() {
        let end = s.find('&').unwrap_or(s.len());
        let param = &s[..end];
        let keyword_end = param.find('=');
        let Some(eq) = keyword_end else {
            return Err(ConnInfoError::InvalidUri(format!(
                "missing key/value separator \"=\" in URI query parameter: \"{param}\""
            )));
        };
        let keyword = &param[..eq];
        if param[eq + 1..].contains('=') {
            return Err(ConnInfoError::InvalidUri(format!(
                "extra key/value separator \"=\" in URI query parameter: \"{keyword}\""
            )));
        }
        let (keyword, value) = (decode(keyword)?, decode(&param[eq + 1..])?);
        // As libpq, for JDBC's sake: `ssl=true` is `sslmode=require`.
        let (keyword, value) = if keyword == "ssl" && value == "true" {
            ("sslmode".to_owned(), "require".to_owned())
        } else {
            (keyword, value)
        };
        match info.set(&keyword, value) {
            Err(ConnInfoError::InvalidOption(k)) => {
                return Err(ConnInfoError::InvalidUriParameter(k))
            }
            other => other?,
        }
        s = s.get(end + 1..).unwrap_or_default();
    }
    Ok(())
}

/// The length of the run of `b` before any byte of `stops`.
fn until(b: &[u8], stops: &[u8]) -> usize {
    b.iter().position(|c| stops.contains(c)).unwrap_or(b.len())
}

/// Percent-decodes `s`; fails on a bad `%` token, on `%00`, or when the bytes it gives are not
/// UTF-8 (libpq would take them; this crate keeps values as text).
fn decode(s: &str) -> Result<String, ConnInfoError> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let hex = |c: Option<&u8>| c.and_then(|c| (*c as char).to_digit(16));
        let (Some(hi), Some(lo)) = (hex(b.get(i + 1)), hex(b.get(i + 2))) else {
            return Err(ConnInfoError::InvalidUri(format!(
                "invalid percent-encoded token: \"{s}\""
            )));
        };
        let c = (hi << 4 | lo) as u8;
        if c == 0 {
            return Err(ConnInfoError::InvalidUri(format!(
                "forbidden value %00 in percent-encoded value: \"{s}\""
            )));
        }
        out.push(c);
        i += 3;
    }
    String::from_utf8(out).map_err(|_| {
        ConnInfoError::InvalidUri(format!("percent-encoded value is not UTF-8: \"{s}\""))
    })
}
