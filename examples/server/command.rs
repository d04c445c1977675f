//! The commands the server runs itself instead of SQLite: BEGIN/COMMIT/ROLLBACK, SAVEPOINT,
//! SET/RESET/SHOW, LISTEN/UNLISTEN/NOTIFY, COPY, DEALLOCATE and DISCARD; and command tags.

use crate::sql::{is_word, lex, Tok, Token};

/// A COPY command.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CopySpec {
    /// The table (quoted for SQLite), for `COPY table ...`.
    pub(crate) table: Option<String>,
    /// The column list (quoted for SQLite); empty for all columns.
    pub(crate) columns: Vec<String>,
    /// The query, for `COPY (query) TO STDOUT`.
    pub(crate) query: Option<String>,
    /// FROM STDIN (true) or TO STDOUT.
    pub(crate) from: bool,
    /// The field delimiter.
    pub(crate) delimiter: u8,
    /// The NULL marker.
    pub(crate) null: String,
}

/// What a statement asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// BEGIN, START TRANSACTION.
    Begin,
    /// COMMIT, END.
    Commit,
    /// ROLLBACK, ABORT.
    Rollback,
    /// SAVEPOINT, RELEASE, ROLLBACK TO: SQLite runs them, inside a transaction block only.
    Savepoint,
    /// `SET name TO value` (`None`: DEFAULT).
    Set(String, Option<String>),
    /// A SET that changes nothing here (SET TRANSACTION, SET ROLE, ...).
    SetNoop,
    /// `RESET name` (`None`: ALL).
    Reset(Option<String>),
    /// `SHOW name` (`None`: ALL).
    Show(Option<String>),
    /// LISTEN.
    Listen(String),
    /// UNLISTEN (`None`: `*`).
    Unlisten(Option<String>),
    /// NOTIFY channel, payload.
    Notify(String, String),
    /// COPY.
    Copy(CopySpec),
    /// DEALLOCATE (`None`: ALL).
    Deallocate(Option<String>),
    /// DISCARD ALL.
    Discard,
    /// Anything else: SQLite's.
    Sql,
}

impl Command {
    /// Whether the command ends a failed transaction (allowed in state `E`).
    pub(crate) fn ends_failed_tx(&self) -> bool {
        matches!(self, Self::Commit | Self::Rollback | Self::Savepoint)
    }
}

struct Cur<'a> {
    t: &'a [Token],
    i: usize,
}

impl Cur<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i).map(|t| &t.tok)
    }
    fn bump(&mut self) -> Option<&Tok> {
        let t = self.t.get(self.i).map(|t| &t.tok);
        self.i += 1;
        t
    }
    fn kw(&mut self, w: &str) -> bool {
        let hit = self.t.get(self.i).is_some_and(|t| is_word(t, w));
        if hit {
            self.i += 1;
        }
        hit
    }
    fn punct(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(&Tok::Punct(c));
        if hit {
            self.i += 1;
        }
        hit
    }
    fn done(&self) -> bool {
        self.i >= self.t.len()
    }
    /// An identifier: unquoted ones fold to lower case, as in PostgreSQL.
    fn ident(&mut self) -> Option<String> {
        match self.peek()? {
            Tok::Word(w) => {
                let w = w.to_lowercase();
                self.i += 1;
                Some(w)
            }
            Tok::Quoted(q) => {
                let q = q.clone();
                self.i += 1;
                Some(q)
            }
            _ => None,
        }
    }
    /// A dotted name (`a.b`), as one string.
    fn name(&mut self) -> Option<Vec<String>> {
        let mut parts = vec![self.ident()?];
        while self.punct('.') {
            parts.push(self.ident()?);
        }
        Some(parts)
    }
}

fn syntax(near: Option<&Tok>) -> String {
    match near {
        None => "syntax error at end of input".into(),
        Some(t) => format!("syntax error at or near \"{}\"", tok_text(t)),
    }
}

fn tok_text(t: &Tok) -> String {
    match t {
        Tok::Word(s) | Tok::Num(s) => s.clone(),
        Tok::Quoted(s) => format!("\"{s}\""),
        Tok::Str(s) => format!("'{s}'"),
        Tok::Param(n) => format!("${n}"),
        Tok::Punct(c) => c.to_string(),
    }
}

/// Quotes an identifier for SQLite.
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The message of the 0A000 error for a statement naming `pg_catalog` or `information_schema`.
pub(crate) const NO_CATALOG: &str = "pg_catalog is not available in this server (SQLite behind \
     pgproto): psql's \\d and similar commands are not supported";

/// Whether a statement names the `pg_catalog` or `information_schema` schema (psql's `\d`,
/// drivers' metadata queries): SQLite has neither, and a clear error beats a syntax error
/// about PostgreSQL-only syntax further on.
fn touches_catalog(tokens: &[Token]) -> bool {
    tokens.iter().any(|t| match &t.tok {
        Tok::Word(w) | Tok::Quoted(w) => {
            w.eq_ignore_ascii_case("pg_catalog") || w.eq_ignore_ascii_case("information_schema")
        }
        _ => false,
    })
}

/// What a statement (one of [`split`]'s) asks for; `Err` is a syntax error message.
pub(crate) fn classify(stmt: &str) -> Result<Command, String> {
    let Ok(tokens) = lex(stmt) else {
        return Ok(Command::Sql);
    };
    if touches_catalog(&tokens) {
        return Err(format!("0A000:{NO_CATALOG}"));
    }
    let mut c = Cur { t: &tokens, i: 0 };
    let Some(Tok::Word(first)) = c.bump().cloned() else {
        return Ok(Command::Sql);
    };
    let cmd = match first.to_ascii_lowercase().as_str() {
        "begin" => Command::Begin,
        "start" if c.kw("transaction") => Command::Begin,
        "commit" | "end" => Command::Commit,
        "rollback" | "abort" => {
            let _ = c.kw("work") || c.kw("transaction");
            if c.kw("to") {
                Command::Savepoint
            } else {
                Command::Rollback
            }
        }
        "savepoint" | "release" => Command::Savepoint,
        "set" => return parse_set(&mut c),
        "reset" => {
            if c.kw("all") {
                Command::Reset(None)
            } else if c.kw("time") && c.kw("zone") {
                Command::Reset(Some("timezone".into()))
            } else {
                let name = c.name().ok_or_else(|| syntax(c.peek()))?;
                Command::Reset(Some(name.join(".")))
            }
        }
        "show" => {
            if c.kw("all") {
                Command::Show(None)
            } else if c.kw("time") && c.kw("zone") {
                Command::Show(Some("timezone".into()))
            } else if c.kw("transaction") && c.kw("isolation") && c.kw("level") {
                Command::Show(Some("transaction_isolation".into()))
            } else {
                let name = c.name().ok_or_else(|| syntax(c.peek()))?;
                Command::Show(Some(name.join(".")))
            }
        }
        "listen" => Command::Listen(c.ident().ok_or_else(|| syntax(c.peek()))?),
        "unlisten" => {
            if c.punct('*') {
                Command::Unlisten(None)
            } else {
                Command::Unlisten(Some(c.ident().ok_or_else(|| syntax(c.peek()))?))
            }
        }
        "notify" => {
            let channel = c.ident().ok_or_else(|| syntax(c.peek()))?;
            let payload = if c.punct(',') {
                match c.bump() {
                    Some(Tok::Str(s)) => s.clone(),
                    other => return Err(syntax(other)),
                }
            } else {
                String::new()
            };
            Command::Notify(channel, payload)
        }
        "copy" => Command::Copy(parse_copy(&mut c, stmt)?),
        "deallocate" => {
            let _ = c.kw("prepare");
            if c.kw("all") {
                Command::Deallocate(None)
            } else {
                Command::Deallocate(Some(c.ident().ok_or_else(|| syntax(c.peek()))?))
            }
        }
        "discard" => Command::Discard,
        _ => return Ok(Command::Sql),
    };
    if matches!(
        cmd,
        Command::Begin | Command::Commit | Command::Rollback | Command::Discard
    ) {
        // Modifiers (WORK, ISOLATION LEVEL ..., AND NO CHAIN) change nothing here.
        return Ok(cmd);
    }
    if !c.done() && cmd != Command::Savepoint {
        return Err(syntax(c.peek()));
    }
    Ok(cmd)
}

fn parse_set(c: &mut Cur<'_>) -> Result<Command, String> {
    let _ = c.kw("session") || c.kw("local");
    if c.kw("time") {
        if !c.kw("zone") {
            return Err(syntax(c.peek()));
        }
        return set_value(c, "timezone".into());
    }
    for noop in [
        "transaction",
        "characteristics",
        "constraints",
        "role",
        "authorization",
    ] {
        if c.kw(noop) {
            return Ok(Command::SetNoop);
        }
    }
    let name = c.name().ok_or_else(|| syntax(c.peek()))?.join(".");
    if !(c.kw("to") || c.punct('=')) {
        return Err(syntax(c.peek()));
    }
    set_value(c, name)
}

fn set_value(c: &mut Cur<'_>, name: String) -> Result<Command, String> {
    if c.kw("default") || (name == "timezone" && c.kw("local")) {
        return Ok(Command::Set(name, None));
    }
    let mut values = Vec::new();
    loop {
        let negative = c.punct('-');
        let v = match c.bump() {
            Some(Tok::Str(s) | Tok::Quoted(s)) => s.clone(),
            Some(Tok::Word(w)) => w.to_lowercase(),
            Some(Tok::Num(n)) => n.clone(),
            other => return Err(syntax(other)),
        };
        values.push(if negative { format!("-{v}") } else { v });
        if !c.punct(',') {
            break;
        }
    }
    if !c.done() {
        return Err(syntax(c.peek()));
    }
    Ok(Command::Set(name, Some(values.join(", "))))
}

fn parse_copy(c: &mut Cur<'_>, stmt: &str) -> Result<CopySpec, String> {
    let mut spec = CopySpec {
        table: None,
        columns: Vec::new(),
        query: None,
        from: false,
        delimiter: b'\t',
        null: "\\N".into(),
    };
    if c.punct('(') {
        let start = c.i;
        let mut depth = 1;
        while depth > 0 {
            match c.bump() {
                Some(Tok::Punct('(')) => depth += 1,
                Some(Tok::Punct(')')) => depth -= 1,
                Some(_) => {}
                None => return Err(syntax(None)),
            }
        }
        let (a, b) = (c.t[start].start, c.t[c.i - 2].end);
        spec.query = Some(stmt[a..b].into());
    } else {
        let mut name = c.name().ok_or_else(|| syntax(c.peek()))?;
        if name.len() == 2 && name[0] == "public" {
            name.remove(0);
        }
        spec.table = Some(
            name.iter()
                .map(|p| quote_ident(p))
                .collect::<Vec<_>>()
                .join("."),
        );
        if c.punct('(') {
            loop {
                spec.columns
                    .push(quote_ident(&c.ident().ok_or_else(|| syntax(c.peek()))?));
                if c.punct(')') {
                    break;
                }
                if !c.punct(',') {
                    return Err(syntax(c.peek()));
                }
            }
        }
    }
    spec.from = if c.kw("from") {
        true
    } else if c.kw("to") {
        false
    } else {
        return Err(syntax(c.peek()));
    };
    let endpoint = if spec.from { "stdin" } else { "stdout" };
    if !c.kw(endpoint) {
        return Err(
            if matches!(c.peek(), Some(Tok::Str(_))) || c.kw("program") {
                "0A000:COPY to or from a file or program is not supported; use psql's \\copy".into()
            } else {
                syntax(c.peek())
            },
        );
    }
    if spec.from && spec.query.is_some() {
        return Err("0A000:COPY FROM of a query is not possible".into());
    }
    let _ = c.kw("with");
    let parenthesised = c.punct('(');
    while !c.done() {
        if parenthesised && c.punct(')') {
            break;
        }
        let opt = c.ident().ok_or_else(|| syntax(c.peek()))?;
        let _ = c.kw("as");
        let value = match c.peek() {
            Some(Tok::Str(s)) | Some(Tok::Word(s)) if opt != "binary" && opt != "csv" => {
                let v = s.clone();
                c.i += 1;
                Some(v)
            }
            _ => None,
        };
        match (opt.as_str(), value.as_deref()) {
            ("format", Some(f)) if f.eq_ignore_ascii_case("text") => {}
            ("delimiter", Some(d)) if d.len() == 1 && d != "\\" && d != "\n" && d != "\r" => {
                spec.delimiter = d.as_bytes()[0];
            }
            ("null", Some(n)) => spec.null = n.into(),
            ("encoding", Some(e))
                if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
            ("freeze", _) => {}
            _ => {
                return Err(format!(
                    "0A000:COPY option {opt}{} is not supported (text format only)",
                    value.map(|v| format!(" {v}")).unwrap_or_default()
                ))
            }
        }
        let _ = parenthesised && c.punct(',');
    }
    Ok(spec)
}

/// For `DROP kind IF EXISTS name` (`true`) and `CREATE kind IF NOT EXISTS name` (`false`),
/// with kind TABLE, VIEW, INDEX or TRIGGER: the direction, the kind (lower case) and the name.
pub(crate) fn existence_clause(stmt: &str) -> Option<(bool, String, String)> {
    let tokens = lex(stmt).ok()?;
    let mut c = Cur { t: &tokens, i: 0 };
    let drop = if c.kw("drop") {
        true
    } else if c.kw("create") {
        let _ = c.kw("temp") || c.kw("temporary") || c.kw("unique");
        false
    } else {
        return None;
    };
    let kind = ["table", "view", "index", "trigger"]
        .into_iter()
        .find(|k| c.kw(k))?;
    if !(c.kw("if") && (drop || c.kw("not")) && c.kw("exists")) {
        return None;
    }
    let name = c.name()?.pop()?;
    Some((drop, kind.into(), name))
}

/// The words that make a command tag: the first keyword upper-cased, and for CREATE, DROP and
/// ALTER the object kind (`CREATE TABLE`); for WITH, the main statement's verb.
pub(crate) fn tag_verb(stmt: &str) -> String {
    let Ok(tokens) = lex(stmt) else {
        return "SELECT".into();
    };
    let words: Vec<String> = tokens
        .iter()
        .filter_map(|t| match &t.tok {
            Tok::Word(w) => Some(w.to_ascii_uppercase()),
            _ => None,
        })
        .collect();
    let Some(first) = words.first() else {
        return "SELECT".into();
    };
    match first.as_str() {
        "CREATE" | "DROP" | "ALTER" => {
            let kind = words[1..]
                .iter()
                .find(|w| {
                    !matches!(
                        w.as_str(),
                        "TEMP" | "TEMPORARY" | "UNIQUE" | "VIRTUAL" | "OR" | "REPLACE"
                    )
                })
                .cloned()
                .unwrap_or_default();
            format!("{first} {kind}").trim().into()
        }
        "WITH" => {
            // The first verb at parenthesis depth 0.
            let mut depth = 0i32;
            for t in &tokens {
                match &t.tok {
                    Tok::Punct('(') => depth += 1,
                    Tok::Punct(')') => depth -= 1,
                    Tok::Word(w) if depth == 0 => {
                        let w = w.to_ascii_uppercase();
                        if matches!(
                            w.as_str(),
                            "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "VALUES"
                        ) {
                            return if w == "VALUES" { "SELECT".into() } else { w };
                        }
                    }
                    _ => {}
                }
            }
            "SELECT".into()
        }
        "VALUES" | "TABLE" => "SELECT".into(),
        "REPLACE" => "INSERT".into(),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(
            classify("NOTIFY Chan, 'hi'"),
            Ok(Command::Notify("chan".into(), "hi".into()))
        );
        assert_eq!(
            classify("set application_name = 'x y'"),
            Ok(Command::Set("application_name".into(), Some("x y".into())))
        );
        assert_eq!(
            classify("SET TIME ZONE 'UTC'"),
            Ok(Command::Set("timezone".into(), Some("UTC".into())))
        );
        let Ok(Command::Copy(c)) = classify("COPY  t (a, b) FROM STDIN with (delimiter ',')")
        else {
            panic!()
        };
        assert_eq!(
            (c.table.as_deref(), c.columns.len(), c.from, c.delimiter),
            (Some("\"t\""), 2, true, b',')
        );
        let Ok(Command::Copy(c)) = classify("COPY ( select 1 ) TO STDOUT") else {
            panic!()
        };
        assert_eq!(c.query.as_deref(), Some("select 1"));
        assert_eq!(tag_verb("create temp table x (a)"), "CREATE TABLE");
        assert_eq!(
            tag_verb("with a as (select 1) insert into t select * from a"),
            "INSERT"
        );
    }
}
