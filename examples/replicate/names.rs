//! Quoting as PostgreSQL's `quote_identifier`, `quote_literal_cstr` and test_decoding's
//! `print_literal` do, so that the output is test_decoding's byte for byte.

/// The keywords `quote_identifier` quotes: every one that is not unreserved (reserved, column
/// name and type or function name keywords), as PostgreSQL 18's `pg_get_keywords()` lists them
/// (`catcode <> 'U'`). Older servers have fewer (the `json_*` ones came in 16 and 17).
const KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "json",
    "json_array",
    "json_arrayagg",
    "json_exists",
    "json_object",
    "json_objectagg",
    "json_query",
    "json_scalar",
    "json_serialize",
    "json_table",
    "json_value",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "merge_action",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

/// `name` as `quote_identifier` writes it: bare when it is lower-case letters, digits and
/// underscores, not starting with a digit, and not a keyword that needs quoting; otherwise in
/// double quotes with `"` doubled.
pub(crate) fn quote_identifier(name: &[u8]) -> Vec<u8> {
    let safe = name
        .first()
        .is_some_and(|c| c.is_ascii_lowercase() || *c == b'_')
        && name
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        && std::str::from_utf8(name).is_ok_and(|n| KEYWORDS.binary_search(&n).is_err());
    if safe {
        return name.to_vec();
    }
    let mut out = Vec::with_capacity(name.len() + 2);
    out.push(b'"');
    for &c in name {
        if c == b'"' {
            out.push(b'"');
        }
        out.push(c);
    }
    out.push(b'"');
    out
}

/// `namespace.name`, each part quoted as needed (`quote_qualified_identifier`).
pub(crate) fn quote_qualified(namespace: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = quote_identifier(namespace);
    out.push(b'.');
    out.extend(quote_identifier(name));
    out
}

/// `s` as `quote_literal_cstr` writes it: in single quotes with `'` doubled; with `E` before
/// and `\` doubled when it holds a backslash.
pub(crate) fn quote_literal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 3);
    if s.contains(&b'\\') {
        out.push(b'E');
    }
    out.push(b'\'');
    for &c in s {
        if c == b'\'' || c == b'\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push(b'\'');
    out
}

/// Type OIDs test_decoding's `print_literal` treats apart.
const BOOL: u32 = 16;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const OID: u32 = 26;
const FLOAT4: u32 = 700;
const FLOAT8: u32 = 701;
const BIT: u32 = 1560;
const VARBIT: u32 = 1562;
const NUMERIC: u32 = 1700;

/// Appends a value's text form as test_decoding's `print_literal` does for a column of type
/// `type_oid` (the exact type: a domain over integer is quoted): numbers bare, bit strings as
/// `B'...'`, booleans as `true`/`false`, everything else in single quotes with `'` doubled.
pub(crate) fn push_literal(out: &mut Vec<u8>, type_oid: u32, text: &[u8]) {
    match type_oid {
        INT2 | INT4 | INT8 | OID | FLOAT4 | FLOAT8 | NUMERIC => out.extend_from_slice(text),
        BIT | VARBIT => {
            out.extend_from_slice(b"B'");
            out.extend_from_slice(text);
            out.push(b'\'');
        }
        BOOL => out.extend_from_slice(if text == b"t" { b"true" } else { b"false" }),
        _ => {
            out.push(b'\'');
            for &c in text {
                if c == b'\'' {
                    out.push(c);
                }
                out.push(c);
            }
            out.push(b'\'');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_sorted() {
        assert!(KEYWORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn identifiers() {
        for (name, quoted) in [
            ("t", "t"),
            ("_a1", "_a1"),
            ("Mixed Case", "\"Mixed Case\""),
            ("1a", "\"1a\""),
            ("user", "\"user\""),
            ("by", "by"),
            ("a\"b", "\"a\"\"b\""),
            ("ünï", "\"ünï\""),
            ("", "\"\""),
        ] {
            assert_eq!(
                quote_identifier(name.as_bytes()),
                quoted.as_bytes(),
                "{name}"
            );
        }
        assert_eq!(quote_literal(b"it's"), b"'it''s'");
        assert_eq!(quote_literal(b"a\\b"), b"E'a\\\\b'");
        let mut v = Vec::new();
        push_literal(&mut v, BOOL, b"t");
        push_literal(&mut v, VARBIT, b"101");
        push_literal(&mut v, 25, b"o'k");
        assert_eq!(v, b"trueB'101''o''k'");
    }
}
