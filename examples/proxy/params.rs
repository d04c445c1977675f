//! The run-time parameters that follow a client from one upstream connection to the next (as
//! PgBouncer's tracked parameters): what it asked for at start-up or later with `SET` is set
//! again on each connection that serves it, when the connection's value differs.

use bytes::{BufMut, BytesMut};

/// The parameters tracked (each reported by the server with ParameterStatus).
const TRACKED: [&str; 6] = [
    "client_encoding",
    "DateStyle",
    "IntervalStyle",
    "TimeZone",
    "standard_conforming_strings",
    "application_name",
];

/// The tracked parameter `name` is (as the server spells it), if it is one; names are
/// compared without case, as PostgreSQL does.
pub(crate) fn tracked(name: &[u8]) -> Option<&'static str> {
    TRACKED
        .iter()
        .copied()
        .find(|t| t.as_bytes().eq_ignore_ascii_case(name))
}

/// Puts the tracked parameters first, in the order of [`TRACKED`] (the others keep theirs), so
/// that [`set_query`], run each time a connection serves a client, finds them at once.
pub(crate) fn tracked_first(list: &mut [(String, String)]) {
    list.sort_by_key(|(n, _)| TRACKED.iter().position(|t| t == n).unwrap_or(TRACKED.len()));
}

/// Records `value` for `name` (replacing an earlier one).
pub(crate) fn record(list: &mut Vec<(String, String)>, name: &str, value: &str) {
    match list.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = value.to_string(),
        None => list.push((name.to_string(), value.to_string())),
    }
}

/// Records the value a ParameterStatus body (`name\0value\0`) reports, if the parameter is
/// a tracked one.
pub(crate) fn record_reported(list: &mut Vec<(String, String)>, body: &[u8]) {
    let mut parts = body.split(|b| *b == 0);
    if let (Some(name), Some(value)) = (parts.next(), parts.next()) {
        if let Some(name) = tracked(name) {
            record(list, name, &String::from_utf8_lossy(value));
        }
    }
}

/// The Query message that gives a connection whose parameters are `current` the client's
/// values; `None` when they agree. A client's value of a tracked parameter is the one it asked
/// for (`wanted`: at start-up or with `SET`), or else the one it was told at log-in (`told`,
/// the same for every client): another client's `SET TimeZone` on the connection is set back,
/// since PostgreSQL reports nothing when a value does not change.
pub(crate) fn set_query(
    wanted: &[(String, String)],
    told: &[(String, String)],
    current: &[(String, String)],
) -> Option<BytesMut> {
    let mut sql = String::new();
    for (i, name) in TRACKED.into_iter().enumerate() {
        let Some(value) = value_in(wanted, name).or_else(|| value_at(told, i, name)) else {
            continue;
        };
        if value_at(current, i, name) == Some(value) {
            continue;
        }
        // An escape string literal: right whatever standard_conforming_strings is.
        let quoted = value.replace('\\', "\\\\").replace('\'', "''");
        sql.push_str(&format!("SET {name} TO E'{quoted}';"));
    }
    if sql.is_empty() {
        return None;
    }
    let mut out = BytesMut::with_capacity(sql.len() + 6);
    out.put_u8(b'Q');
    out.put_i32((sql.len() + 5) as i32);
    out.put_slice(sql.as_bytes());
    out.put_u8(0);
    Some(out)
}

/// The value `list` holds for `name`, the `i`-th tracked parameter: looked for at index `i`
/// first, where [`tracked_first`] puts it.
fn value_at<'l>(list: &'l [(String, String)], i: usize, name: &str) -> Option<&'l str> {
    match list.get(i) {
        Some((n, v)) if n == name => Some(v),
        _ => value_in(list, name),
    }
}

/// The value `list` holds for `name`.
fn value_in<'l>(list: &'l [(String, String)], name: &str) -> Option<&'l str> {
    list.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_differences_are_set() {
        let wanted = vec![
            ("application_name".to_string(), "it's".to_string()),
            ("TimeZone".to_string(), "UTC".to_string()),
        ];
        let current = vec![("TimeZone".to_string(), "UTC".to_string())];
        let q = set_query(&wanted, &[], &current).unwrap();
        assert_eq!(&q[5..], b"SET application_name TO E'it''s';\0");
        assert!(set_query(&current, &[], &current).is_none());
        // What the client was told stands where it asked for nothing.
        let told = vec![("TimeZone".to_string(), "Etc/UTC".to_string())];
        let q = set_query(&[], &told, &current).unwrap();
        assert_eq!(&q[5..], b"SET TimeZone TO E'Etc/UTC';\0");
        assert!(set_query(&current, &told, &current).is_none());
        assert_eq!(tracked(b"datestyle"), Some("DateStyle"));
        let mut list: Vec<(String, String)> = [
            "server_version",
            "TimeZone",
            "is_superuser",
            "client_encoding",
        ]
        .iter()
        .map(|n| (n.to_string(), String::new()))
        .collect();
        tracked_first(&mut list);
        let names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "client_encoding",
                "TimeZone",
                "server_version",
                "is_superuser"
            ]
        );
        assert_eq!(tracked(b"search_path"), None);
    }
}
