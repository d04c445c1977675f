//! SQL text: a small PostgreSQL-flavoured lexer, the splitting of a query string into
//! statements, and the rewriting of a statement for SQLite (`$n` placeholders into `?n`,
//! `operand::type` casts into `CAST(operand AS type)`). The commands the server runs itself are
//! parsed in [`command`](crate::command).

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// An unquoted identifier or keyword, as written.
    Word(String),
    /// A double-quoted identifier, unescaped.
    Quoted(String),
    /// A string literal ('...', E'...', $$...$$), unescaped.
    Str(String),
    /// A number, as written.
    Num(String),
    /// `$n`.
    Param(u32),
    /// Any other character.
    Punct(char),
}

/// A token and where it is in the text (byte offsets).
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// Splits SQL into tokens; `Err` for an unterminated string, identifier or comment.
pub(crate) fn lex(sql: &str) -> Result<Vec<Token>, &'static str> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let c = b[i];
        let tok = match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c => {
                i += 1;
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                loop {
                    if i + 1 >= b.len() {
                        return Err("unterminated /* comment");
                    }
                    match (b[i], b[i + 1]) {
                        (b'/', b'*') => {
                            depth += 1;
                            i += 2;
                        }
                        (b'*', b'/') => {
                            depth -= 1;
                            i += 2;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => i += 1,
                    }
                }
                continue;
            }
            b'\'' => {
                let (s, end) = quoted(sql, i, b'\'', false)?;
                i = end;
                Tok::Str(s)
            }
            b'e' | b'E' if b.get(i + 1) == Some(&b'\'') => {
                let (s, end) = quoted(sql, i + 1, b'\'', true)?;
                i = end;
                Tok::Str(s)
            }
            b'"' => {
                let (s, end) = quoted(sql, i, b'"', false)?;
                i = end;
                Tok::Quoted(s)
            }
            b'$' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                Tok::Param(sql[start + 1..i].parse().unwrap_or(u32::MAX))
            }
            b'$' => match dollar_quoted(sql, i)? {
                Some((s, end)) => {
                    i = end;
                    Tok::Str(s)
                }
                None => {
                    i += 1;
                    Tok::Punct('$')
                }
            },
            b'0'..=b'9' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                Tok::Num(sql[start..i].into())
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'_'
                        || b[i] == b'$'
                        || b[i] >= 0x80)
                {
                    i += 1;
                }
                Tok::Word(sql[start..i].into())
            }
            _ => {
                // INVARIANT: an ASCII byte here (every byte >= 0x80 starts a word above).
                i += 1;
                Tok::Punct(char::from(c))
            }
        };
        out.push(Token { tok, start, end: i });
    }
    Ok(out)
}

/// A quoted string or identifier starting at `at` (the quote); doubled quotes escape, and with
/// `backslash`, so do C-style escapes.
fn quoted(sql: &str, at: usize, q: u8, backslash: bool) -> Result<(String, usize), &'static str> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = at + 1;
    loop {
        let Some(&c) = b.get(i) else {
            return Err(if q == b'"' {
                "unterminated quoted identifier"
            } else {
                "unterminated quoted string"
            });
        };
        i += 1;
        if c == q {
            if b.get(i) == Some(&q) {
                out.push(q);
                i += 1;
                continue;
            }
            break;
        }
        if backslash && c == b'\\' {
            let Some(&e) = b.get(i) else { continue };
            i += 1;
            out.push(match e {
                b'n' => b'\n',
                b't' => b'\t',
                b'r' => b'\r',
                b'b' => 8,
                b'f' => 12,
                other => other,
            });
            continue;
        }
        out.push(c);
    }
    Ok((String::from_utf8_lossy(&out).into_owned(), i))
}

/// `$tag$ ... $tag$` starting at `at`, or `None` if no dollar quote starts there.
fn dollar_quoted(sql: &str, at: usize) -> Result<Option<(String, usize)>, &'static str> {
    let rest = &sql[at + 1..];
    let tag_len = rest
        .bytes()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
        .count();
    if rest.as_bytes().get(tag_len) != Some(&b'$') {
        return Ok(None);
    }
    let delim = &sql[at..at + tag_len + 2];
    let body_start = at + delim.len();
    match sql[body_start..].find(delim) {
        Some(n) => Ok(Some((
            sql[body_start..body_start + n].into(),
            body_start + n + delim.len(),
        ))),
        None => Err("unterminated dollar-quoted string"),
    }
}

pub(crate) fn is_word(t: &Token, w: &str) -> bool {
    matches!(&t.tok, Tok::Word(x) if x.eq_ignore_ascii_case(w))
}

/// The statements of a query string, in order, without their semicolons; statements holding
/// only comments or whitespace are left out. `CREATE TRIGGER ... BEGIN ...; END` stays whole.
pub(crate) fn split(sql: &str) -> Vec<&str> {
    let Ok(tokens) = lex(sql) else {
        // Let SQLite report the unterminated literal.
        return vec![sql.trim()];
    };
    let mut out = Vec::new();
    let mut first: Option<usize> = None;
    let mut trigger = false;
    for (k, t) in tokens.iter().enumerate() {
        let semi = t.tok == Tok::Punct(';');
        let Some(f) = first else {
            if !semi {
                first = Some(k);
                let mut w = tokens[k..].iter();
                trigger = w.next().is_some_and(|t| is_word(t, "create")) && {
                    let next = w.next();
                    let next =
                        if next.is_some_and(|t| is_word(t, "temp") || is_word(t, "temporary")) {
                            w.next()
                        } else {
                            next
                        };
                    next.is_some_and(|t| is_word(t, "trigger"))
                };
            }
            continue;
        };
        if semi && (!trigger || is_word(&tokens[k - 1], "end")) {
            out.push(&sql[tokens[f].start..tokens[k - 1].end]);
            first = None;
        }
    }
    if let (Some(f), Some(last)) = (first, tokens.last()) {
        out.push(&sql[tokens[f].start..last.end]);
    }
    out
}

/// The statement for SQLite: `operand::type` casts turned into `CAST(operand AS type)`, `$n`
/// into `?n`; and the highest `n`.
pub(crate) fn translate_params(sql: &str) -> (String, u32) {
    let mut text = sql.to_string();
    // Each round rewrites the first cast; a statement has few.
    for _ in 0..1000 {
        match rewrite_first_cast(&text) {
            Some(t) => text = t,
            None => break,
        }
    }
    let sql = text.as_str();
    let Ok(tokens) = lex(sql) else {
        return (sql.into(), 0);
    };
    let mut out = String::with_capacity(sql.len());
    let mut at = 0;
    let mut max = 0;
    for t in &tokens {
        if let Tok::Param(n) = t.tok {
            out.push_str(&sql[at..t.start]);
            out.push('?');
            out.push_str(&n.to_string());
            at = t.end;
            max = max.max(n);
        }
    }
    out.push_str(&sql[at..]);
    (out, max)
}

/// The SQLite type name for a PostgreSQL one.
fn sqlite_type(pg: &str) -> Option<&'static str> {
    Some(match pg {
        "int" | "int2" | "int4" | "int8" | "integer" | "smallint" | "bigint" | "oid" => "INTEGER",
        "float" | "float4" | "float8" | "real" | "double" => "REAL",
        "numeric" | "decimal" => "NUMERIC",
        "bool" | "boolean" => "BOOLEAN",
        "bytea" => "BLOB",
        _ => return None,
    })
}

/// Rewrites the first `operand::type` of `sql`, or `None` if there is none.
fn rewrite_first_cast(sql: &str) -> Option<String> {
    let t = lex(sql).ok()?;
    let k = (1..t.len()).find(|&k| {
        t[k - 1].tok == Tok::Punct(':') && t[k].tok == Tok::Punct(':') && t[k - 1].end == t[k].start
    })? - 1;
    // The type: one word (two for "double precision", "character varying", four for "time[stamp]
    // with[out] time zone"), then an optional (modifier) and [] suffixes.
    let word = |i: usize| match t.get(i).map(|x| &x.tok) {
        Some(Tok::Word(w)) => Some(w.to_ascii_lowercase()),
        Some(Tok::Quoted(w)) => Some(w.clone()),
        _ => None,
    };
    let first = word(k + 2)?;
    let mut end = k + 2;
    let next = word(end + 1);
    match (first.as_str(), next.as_deref()) {
        ("double", Some("precision")) | ("character", Some("varying")) => end += 1,
        ("timestamp" | "time", Some("with" | "without"))
            if word(end + 2).as_deref() == Some("time")
                && word(end + 3).as_deref() == Some("zone") =>
        {
            end += 3
        }
        _ => {}
    }
    if t.get(end + 1).is_some_and(|x| x.tok == Tok::Punct('(')) {
        end = (end + 1..t.len()).find(|&i| t[i].tok == Tok::Punct(')'))?;
    }
    while t.get(end + 1).is_some_and(|x| x.tok == Tok::Punct('['))
        && t.get(end + 2).is_some_and(|x| x.tok == Tok::Punct(']'))
    {
        end += 2;
    }
    let ty = sqlite_type(&first).unwrap_or("TEXT");
    // The operand: a literal, parameter, (qualified) name, function call or parenthesised group.
    let mut a = k.checked_sub(1)?;
    match &t[a].tok {
        Tok::Punct(')') => {
            let mut depth = 0;
            loop {
                match t[a].tok {
                    Tok::Punct(')') => depth += 1,
                    Tok::Punct('(') => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                a = a.checked_sub(1)?;
            }
            if a > 0 && matches!(t[a - 1].tok, Tok::Word(_) | Tok::Quoted(_)) {
                a -= 1;
            }
        }
        Tok::Str(_)
            if a > 0 && matches!(t[a - 1].tok, Tok::Word(_)) && t[a - 1].end == t[a].start =>
        {
            a -= 1
        }
        Tok::Word(_) | Tok::Quoted(_) | Tok::Str(_) | Tok::Num(_) | Tok::Param(_) => {}
        _ => {
            // Unknown shape: drop the cast.
            return Some(format!("{}{}", &sql[..t[k].start], &sql[t[end].end..]));
        }
    }
    while a >= 2
        && t[a - 1].tok == Tok::Punct('.')
        && matches!(t[a - 2].tok, Tok::Word(_) | Tok::Quoted(_))
    {
        a -= 2;
    }
    Some(format!(
        "{}CAST({} AS {ty}){}",
        &sql[..t[a].start],
        &sql[t[a].start..t[k].start],
        &sql[t[end].end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_translates() {
        assert_eq!(
            split("select 1; select ';' -- x;\n ; /* ; */ select $1"),
            ["select 1", "select ';'", "select $1"]
        );
        assert_eq!(split(" -- only a comment\n"), Vec::<&str>::new());
        let t = "CREATE TRIGGER t AFTER INSERT ON a BEGIN INSERT INTO b VALUES (1); END; SELECT 2";
        assert_eq!(split(t).len(), 2);
        assert_eq!(
            translate_params("select $1, '$2', $10"),
            ("select ?1, '$2', ?10".into(), 10)
        );
        assert_eq!(
            translate_params("select $1::int8, f(x)::double precision, 'a'::varchar(3)[], t.c::text as c"),
            (
                "select CAST(?1 AS INTEGER), CAST(f(x) AS REAL), CAST('a' AS TEXT), CAST(t.c AS TEXT) as c".into(),
                1
            )
        );
    }
}
