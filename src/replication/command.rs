//! The replication commands after which CopyData carries replication messages, read from and
//! written as the text a replication connection sends in a simple Query.

use std::fmt;

use crate::replication::Lsn;

/// A replication command that starts a COPY of replication messages: `START_REPLICATION`
/// (physical or logical) or `BASE_BACKUP`. Parsing it from a Query tells a proxy or a
/// recording tool what the CopyData that follow carry; writing it builds the command.
///
/// ```
/// use pgproto::replication::{Lsn, ReplicationCommand};
///
/// let c = ReplicationCommand::parse(
///     "START_REPLICATION SLOT \"s1\" LOGICAL 0/1A2B (\"proto_version\" '4', publication_names 'p')",
/// ).unwrap();
/// let ReplicationCommand::StartLogical { slot, start, options } = &c else { unreachable!() };
/// assert_eq!((slot.as_str(), *start), ("s1", Lsn::new(0x1a2b)));
/// assert_eq!(options[0], ("proto_version".to_string(), Some("4".to_string())));
/// assert_eq!(
///     c.to_string(),
///     "START_REPLICATION SLOT \"s1\" LOGICAL 0/1A2B (\"proto_version\" '4', \"publication_names\" 'p')"
/// );
/// assert!(ReplicationCommand::parse("IDENTIFY_SYSTEM").is_none());
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicationCommand {
    /// `START_REPLICATION [SLOT slot] [PHYSICAL] lsn [TIMELINE tli]`.
    StartPhysical {
        /// The slot, if one is named.
        slot: Option<String>,
        /// Where to start.
        start: Lsn,
        /// The timeline, if one is named.
        timeline: Option<u32>,
    },
    /// `START_REPLICATION SLOT slot LOGICAL lsn [(option [value], ...)]`.
    StartLogical {
        /// The slot.
        slot: String,
        /// Where to start.
        start: Lsn,
        /// The output plugin's options, names folded to lower case unless quoted.
        options: Vec<(String, Option<String>)>,
    },
    /// `BASE_BACKUP [(option [value], ...)]`, or its older form with bare options (kept here
    /// as given, upper-cased).
    BaseBackup {
        /// The options.
        options: Vec<(String, Option<String>)>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A bare word (keyword, identifier, number, LSN).
    Word(String),
    /// A double-quoted identifier.
    Quoted(String),
    /// A single-quoted string.
    Str(String),
    /// `(`, `)`, `,` or `;`.
    Punct(char),
}

fn tokens(s: &str) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' | ';' => {
                chars.next();
                out.push(Token::Punct(c));
            }
            '"' | '\'' => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next()? {
                        q if q == c && chars.peek() == Some(&c) => {
                            chars.next();
                            text.push(c);
                        }
                        q if q == c => break,
                        other => text.push(other),
                    }
                }
                out.push(if c == '"' {
                    Token::Quoted(text)
                } else {
                    Token::Str(text)
                });
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "(),;\"'".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
        }
    }
    while out.last() == Some(&Token::Punct(';')) {
        out.pop();
    }
    Some(out)
}

fn is_keyword(t: Option<&Token>, keyword: &str) -> bool {
    matches!(t, Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
}

/// An identifier: a bare word folded to lower case, or a quoted one as written.
fn identifier(t: Option<&Token>) -> Option<String> {
    match t? {
        Token::Word(w) => Some(w.to_lowercase()),
        Token::Quoted(q) => Some(q.clone()),
        _ => None,
    }
}

/// `( name [value] [, ...] )` from `t`, which must end there.
fn option_list(t: &[Token]) -> Option<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    let [Token::Punct('('), inner @ .., Token::Punct(')')] = t else {
        return if t.is_empty() { Some(out) } else { None };
    };
    for item in inner.split(|t| *t == Token::Punct(',')) {
        let (name, value) = match item {
            [name] => (identifier(Some(name))?, None),
            [name, value] => {
                let value = match value {
                    Token::Str(s) | Token::Word(s) | Token::Quoted(s) => s.clone(),
                    Token::Punct(_) => return None,
                };
                (identifier(Some(name))?, Some(value))
            }
            _ => return None,
        };
        out.push((name, value));
    }
    Some(out)
}

impl ReplicationCommand {
    /// Reads a replication command from a Query's text; `None` for any other command or text
    /// that does not parse.
    pub fn parse(sql: &str) -> Option<Self> {
        let t = tokens(sql)?;
        if is_keyword(t.first(), "BASE_BACKUP") {
            let rest = &t[1..];
            if rest.first() == Some(&Token::Punct('(')) {
                return Some(Self::BaseBackup {
                    options: option_list(rest)?,
                });
            }
            // The older syntax: bare keywords, some followed by a value.
            let mut options = Vec::new();
            let mut i = 0;
            while i < rest.len() {
                let Token::Word(name) = &rest[i] else {
                    return None;
                };
                let value = match rest.get(i + 1) {
                    Some(Token::Str(s)) => Some(s.clone()),
                    _ => None,
                };
                i += 1 + usize::from(value.is_some());
                options.push((name.to_uppercase(), value));
            }
            return Some(Self::BaseBackup { options });
        }
        if !is_keyword(t.first(), "START_REPLICATION") {
            return None;
        }
        let mut i = 1;
        let mut slot = None;
        if is_keyword(t.get(i), "SLOT") {
            slot = Some(identifier(t.get(i + 1))?);
            i += 2;
        }
        if is_keyword(t.get(i), "LOGICAL") {
            let Some(Token::Word(lsn)) = t.get(i + 1) else {
                return None;
            };
            return Some(Self::StartLogical {
                slot: slot?,
                start: lsn.parse().ok()?,
                options: option_list(&t[i + 2..])?,
            });
        }
        if is_keyword(t.get(i), "PHYSICAL") {
            i += 1;
        }
        let Some(Token::Word(lsn)) = t.get(i) else {
            return None;
        };
        let start = lsn.parse().ok()?;
        let timeline = match &t[i + 1..] {
            [] => None,
            [kw, Token::Word(n)] if is_keyword(Some(kw), "TIMELINE") => Some(n.parse().ok()?),
            _ => return None,
        };
        Some(Self::StartPhysical {
            slot,
            start,
            timeline,
        })
    }
}

/// `"name"`, with `"` doubled.
pub(crate) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn write_options(f: &mut fmt::Formatter<'_>, options: &[(String, Option<String>)]) -> fmt::Result {
    if options.is_empty() {
        return Ok(());
    }
    f.write_str(" (")?;
    for (i, (name, value)) in options.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        f.write_str(&quote_identifier(name))?;
        if let Some(v) = value {
            write!(f, " '{}'", v.replace('\'', "''"))?;
        }
    }
    f.write_str(")")
}

impl fmt::Display for ReplicationCommand {
    /// The command's text: names double-quoted, option values as string literals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StartPhysical {
                slot,
                start,
                timeline,
            } => {
                f.write_str("START_REPLICATION")?;
                if let Some(s) = slot {
                    write!(f, " SLOT {}", quote_identifier(s))?;
                }
                write!(f, " PHYSICAL {start}")?;
                if let Some(t) = timeline {
                    write!(f, " TIMELINE {t}")?;
                }
                Ok(())
            }
            Self::StartLogical {
                slot,
                start,
                options,
            } => {
                write!(
                    f,
                    "START_REPLICATION SLOT {} LOGICAL {start}",
                    quote_identifier(slot)
                )?;
                write_options(f, options)
            }
            Self::BaseBackup { options } => {
                f.write_str("BASE_BACKUP")?;
                write_options(f, options)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(
            ReplicationCommand::parse("start_replication 1/2"),
            Some(ReplicationCommand::StartPhysical {
                slot: None,
                start: Lsn::new((1 << 32) + 2),
                timeline: None
            })
        );
        let c =
            ReplicationCommand::parse("START_REPLICATION SLOT Phys PHYSICAL 0/3000000 TIMELINE 2;")
                .unwrap();
        assert_eq!(
            c,
            ReplicationCommand::StartPhysical {
                slot: Some("phys".into()),
                start: Lsn::new(0x300_0000),
                timeline: Some(2)
            }
        );
        assert_eq!(
            c.to_string(),
            "START_REPLICATION SLOT \"phys\" PHYSICAL 0/3000000 TIMELINE 2"
        );
        assert_eq!(ReplicationCommand::parse(&c.to_string()), Some(c));
        let c = ReplicationCommand::parse(
            "BASE_BACKUP ( LABEL 'it''s', PROGRESS, CHECKPOINT 'fast', MANIFEST 'yes')",
        )
        .unwrap();
        let ReplicationCommand::BaseBackup { options } = &c else {
            panic!()
        };
        assert_eq!(options[0], ("label".into(), Some("it's".into())));
        assert_eq!(options[1], ("progress".into(), None));
        assert_eq!(ReplicationCommand::parse(&c.to_string()), Some(c));
        let c = ReplicationCommand::parse("BASE_BACKUP LABEL 'x' PROGRESS").unwrap();
        assert_eq!(
            c,
            ReplicationCommand::BaseBackup {
                options: vec![
                    ("LABEL".into(), Some("x".into())),
                    ("PROGRESS".into(), None)
                ]
            }
        );
        for bad in [
            "START_REPLICATION",
            "START_REPLICATION SLOT s LOGICAL",
            "START_REPLICATION LOGICAL 0/0",
            "START_REPLICATION SLOT s LOGICAL 0/0 (a 'b'",
            "START_REPLICATION 0/0 TIMELINE",
            "START_REPLICATION SLOT 's' 0/0",
            "SELECT 1",
            "START_REPLICATION SLOT \"s LOGICAL 0/0",
        ] {
            assert_eq!(ReplicationCommand::parse(bad), None, "{bad}");
        }
    }
}
