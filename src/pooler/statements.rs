//! Prepared-statement tracking for a transaction pooler: which named statements each client
//! has, which upstream connection has which, and the name each has upstream.
//!
//! A client's statement lives in its session; in transaction pooling the client's next
//! transaction may run on another upstream connection, and clients choose their names alone
//! (pgbench's `P_0`, asyncpg's `__asyncpg_stmt_1__`), so the same name from two clients means
//! two statements. The pooler therefore gives every distinct statement (query text and
//! parameter types) one name of its own ([`StatementRegistry`]), keeps each client's names
//! ([`ClientStatements`]) and each upstream connection's statements ([`UpstreamStatements`],
//! at most a configured number, least recently used evicted: PgBouncer's
//! `max_prepared_statements`), and rewrites messages accordingly
//! ([`Rewrite`](super::Rewrite)).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::tagged;
use crate::message::frontend::tag;
use crate::message::frontend::Parse;

/// A statement as the pooler knows it: its query text and parameter types, and the name it has
/// on every upstream connection.
#[derive(Debug, PartialEq, Eq)]
pub struct Statement {
    id: u64,
    name: Box<str>,
    query: Bytes,
    /// The parameter type OIDs as on the wire (four bytes each).
    param_types: Bytes,
}

impl Statement {
    /// The registry's number for it.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Its name on upstream connections.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The query text.
    pub fn query(&self) -> &[u8] {
        &self.query
    }

    /// The parameter type OIDs given when it was parsed.
    pub fn param_types(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        self.param_types
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// Writes the Parse that creates it on an upstream connection.
    pub fn encode_parse(&self, out: &mut BytesMut) {
        let len = self.name.len() + 1 + self.query.len() + 1 + 2 + self.param_types.len();
        tagged(out, tag::PARSE, len, |o| {
            o.put_slice(self.name.as_bytes());
            o.put_u8(0);
            o.put_slice(&self.query);
            o.put_u8(0);
            // INVARIANT: the types came from a Parse message, whose count is an Int16.
            o.put_u16((self.param_types.len() / 4) as u16);
            o.put_slice(&self.param_types);
        });
    }

    /// Writes the Close that removes it from an upstream connection.
    pub fn encode_close(&self, out: &mut BytesMut) {
        tagged(out, tag::CLOSE, self.name.len() + 2, |o| {
            o.put_u8(b'S');
            o.put_slice(self.name.as_bytes());
            o.put_u8(0);
        });
    }
}

/// The statements of a pool: one [`Statement`] (and one upstream name) per distinct query text
/// and parameter types, shared by every client that prepares it. Safe to share between threads
/// (`Arc<StatementRegistry>`); a statement is forgotten when no client or upstream connection
/// holds it any more.
///
/// ```
/// use pgproto::pooler::StatementRegistry;
/// use pgproto::Parse;
///
/// let registry = StatementRegistry::new("pgproto_");
/// let a = registry.intern(&Parse::decode(b"P_0\0SELECT 1\0\0\0").unwrap());
/// let b = registry.intern(&Parse::decode(b"other\0SELECT 1\0\0\0").unwrap());
/// let c = registry.intern(&Parse::decode(b"P_0\0SELECT 2\0\0\0").unwrap());
/// assert!(std::sync::Arc::ptr_eq(&a, &b)); // the same text: one statement, whatever the names
/// assert_eq!((a.name(), c.name()), ("pgproto_1", "pgproto_2"));
/// ```
#[derive(Debug)]
pub struct StatementRegistry {
    inner: Mutex<Registry>,
}

#[derive(Debug)]
struct Registry {
    prefix: Box<str>,
    next_id: u64,
    /// By query text and parameter types.
    by_text: HashMap<(Bytes, Bytes), Weak<Statement>>,
    /// Entries when dead ones were last swept; the next sweep comes at twice as many.
    swept_at: usize,
}

impl StatementRegistry {
    /// An empty registry whose statements are named `prefix` followed by a number. Choose a
    /// prefix clients do not use.
    pub fn new(prefix: &str) -> Self {
        Self {
            inner: Mutex::new(Registry {
                prefix: prefix.into(),
                next_id: 0,
                by_text: HashMap::new(),
                swept_at: 64,
            }),
        }
    }

    /// The statement a Parse describes (its name aside), created if no one holds it.
    pub fn intern(&self, parse: &Parse<'_>) -> Arc<Statement> {
        let mut r = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (
            Bytes::copy_from_slice(parse.query()),
            Bytes::copy_from_slice(parse.param_types_raw()),
        );
        if let Some(s) = r.by_text.get(&key).and_then(Weak::upgrade) {
            return s;
        }
        r.next_id += 1;
        let id = r.next_id;
        let statement = Arc::new(Statement {
            id,
            name: format!("{}{id}", r.prefix).into(),
            query: key.0.clone(),
            param_types: key.1.clone(),
        });
        r.by_text.insert(key, Arc::downgrade(&statement));
        if r.by_text.len() >= r.swept_at {
            r.by_text.retain(|_, w| w.strong_count() > 0);
            r.swept_at = (r.by_text.len() * 2).max(64);
        }
        statement
    }

    /// The number of statements someone holds.
    pub fn len(&self) -> usize {
        let r = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        r.by_text.values().filter(|w| w.strong_count() > 0).count()
    }

    /// Whether no one holds a statement.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A client's named statements, by the names it gave them.
#[derive(Debug)]
pub struct ClientStatements {
    map: HashMap<Box<[u8]>, Arc<Statement>>,
    limit: usize,
}

/// More statements than [`ClientStatements::with_limit`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many prepared statements (at most {limit} per client)")]
pub struct TooManyStatements {
    /// The limit.
    pub limit: usize,
}

impl Default for ClientStatements {
    fn default() -> Self {
        Self::with_limit(Self::DEFAULT_LIMIT)
    }
}

impl ClientStatements {
    /// The default limit of statements per client.
    pub const DEFAULT_LIMIT: usize = 10_000;

    /// No statements; at most `limit` at a time (so that a client cannot make the pooler's
    /// memory grow without bound).
    pub fn with_limit(limit: usize) -> Self {
        Self {
            map: HashMap::new(),
            limit,
        }
    }

    /// The statement named `name`.
    pub fn get(&self, name: &[u8]) -> Option<&Arc<Statement>> {
        self.map.get(name)
    }

    /// Names `statement` `name`, returning the statement the name had.
    ///
    /// Fails when the client has as many statements as its limit and `name` is new.
    pub fn insert(
        &mut self,
        name: &[u8],
        statement: Arc<Statement>,
    ) -> Result<Option<Arc<Statement>>, TooManyStatements> {
        if self.map.len() >= self.limit && !self.map.contains_key(name) {
            return Err(TooManyStatements { limit: self.limit });
        }
        Ok(self.map.insert(name.into(), statement))
    }

    /// Forgets the name, returning its statement.
    pub fn remove(&mut self, name: &[u8]) -> Option<Arc<Statement>> {
        self.map.remove(name)
    }

    /// The number of statements.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the client has none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Forgets every statement (a client's `DISCARD ALL` or `DEALLOCATE ALL`).
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

/// The statements prepared on one upstream connection, at most a capacity, the least recently
/// used evicted first.
///
/// ```
/// use pgproto::pooler::{StatementRegistry, UpstreamStatements};
/// use pgproto::Parse;
///
/// let registry = StatementRegistry::new("s");
/// let one = registry.intern(&Parse::decode(b"\0SELECT 1\0\0\0").unwrap());
/// let two = registry.intern(&Parse::decode(b"\0SELECT 2\0\0\0").unwrap());
/// let mut upstream = UpstreamStatements::new(1);
/// assert!(upstream.make_room().is_none());
/// upstream.insert(one.clone());
/// assert_eq!(upstream.make_room().as_ref(), Some(&one)); // to be closed upstream
/// upstream.insert(two.clone());
/// assert!(upstream.contains(&two) && !upstream.contains(&one));
/// ```
#[derive(Debug)]
pub struct UpstreamStatements {
    capacity: usize,
    clock: u64,
    /// By statement id: the statement and when it was last used.
    map: HashMap<u64, (Arc<Statement>, u64)>,
}

impl UpstreamStatements {
    /// No statements; at most `capacity` (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            clock: 0,
            map: HashMap::new(),
        }
    }

    /// Whether the connection has `statement`.
    pub fn contains(&self, statement: &Statement) -> bool {
        self.map.contains_key(&statement.id)
    }

    /// Marks `statement` used now (it is evicted last).
    pub fn touch(&mut self, statement: &Statement) {
        self.clock += 1;
        if let Some(e) = self.map.get_mut(&statement.id) {
            e.1 = self.clock;
        }
    }

    /// When the connection is full: removes the least recently used statement and returns it,
    /// for the application to close upstream.
    pub fn make_room(&mut self) -> Option<Arc<Statement>> {
        if self.map.len() < self.capacity {
            return None;
        }
        let (&id, _) = self.map.iter().min_by_key(|(_, (_, used))| *used)?;
        self.map.remove(&id).map(|(s, _)| s)
    }

    /// Records `statement` as prepared on the connection (call [`make_room`](Self::make_room)
    /// first to stay within the capacity).
    pub fn insert(&mut self, statement: Arc<Statement>) {
        self.clock += 1;
        self.map.insert(statement.id, (statement, self.clock));
    }

    /// Forgets `statement` (its Parse failed, or it was closed).
    pub fn remove(&mut self, statement: &Statement) -> Option<Arc<Statement>> {
        self.map.remove(&statement.id).map(|(s, _)| s)
    }

    /// Forgets every statement.
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// The number of statements.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the connection has none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Takes note of a CommandComplete's tag from the connection: `DISCARD ALL` and
    /// `DEALLOCATE ALL` remove every prepared statement upstream.
    #[inline]
    pub fn after_command(&mut self, command_tag: &[u8]) {
        if matches!(command_tag, b"DISCARD ALL" | b"DEALLOCATE ALL") {
            self.clear();
        }
    }
}

impl Statement {
    /// A statement outside any registry, for tests.
    #[cfg(test)]
    pub(crate) fn for_test(id: u64, query: &str) -> Arc<Self> {
        Arc::new(Self {
            id,
            name: format!("t{id}").into(),
            query: Bytes::copy_from_slice(query.as_bytes()),
            param_types: Bytes::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_forgets_statements_no_one_holds() {
        let registry = StatementRegistry::new("s");
        let keep = registry.intern(&Parse::decode(b"\0SELECT 0\0\0\0").unwrap());
        for i in 1..200 {
            let q = format!("\0SELECT {i}\0\0\0");
            drop(registry.intern(&Parse::decode(q.as_bytes()).unwrap()));
        }
        assert_eq!(registry.len(), 1);
        let r = registry.inner.lock().unwrap();
        assert!(r.by_text.len() < 130, "{}", r.by_text.len());
        drop(r);
        // Types count: the same text with other types is another statement.
        let typed = registry.intern(&Parse::decode(b"\0SELECT 0\0\0\x01\0\0\0\x17").unwrap());
        assert_ne!(typed.id(), keep.id());
        assert_eq!(typed.param_types().collect::<Vec<_>>(), [23]);
    }

    #[test]
    fn client_limit() {
        let mut c = ClientStatements::with_limit(1);
        let s = Statement::for_test(1, "SELECT 1");
        assert!(c.insert(b"a", s.clone()).unwrap().is_none());
        assert!(c.insert(b"a", s.clone()).unwrap().is_some()); // renaming in place is fine
        assert_eq!(
            c.insert(b"b", s.clone()),
            Err(TooManyStatements { limit: 1 })
        );
        assert!(c.remove(b"a").is_some());
        assert!(c.is_empty());
    }

    #[test]
    fn upstream_lru() {
        let mut u = UpstreamStatements::new(2);
        let (a, b, c) = (
            Statement::for_test(1, "a"),
            Statement::for_test(2, "b"),
            Statement::for_test(3, "c"),
        );
        u.insert(a.clone());
        u.insert(b.clone());
        u.touch(&a);
        assert_eq!(u.make_room(), Some(b.clone()));
        u.insert(c.clone());
        assert!(u.contains(&a) && u.contains(&c) && !u.contains(&b));
        u.after_command(b"DEALLOCATE ALL");
        assert!(u.is_empty());
    }

    #[test]
    fn statement_messages() {
        let registry = StatementRegistry::new("p");
        let s = registry.intern(&Parse::decode(b"x\0SELECT $1\0\0\x01\0\0\0\x17").unwrap());
        let mut out = BytesMut::new();
        s.encode_parse(&mut out);
        assert_eq!(&out[..], b"P\0\0\0\x17p1\0SELECT $1\0\0\x01\0\0\0\x17");
        out.clear();
        s.encode_close(&mut out);
        assert_eq!(&out[..], b"C\0\0\0\x08Sp1\0");
    }
}
