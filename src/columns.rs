//! The number of columns each DataRow must have: the rule both roles keep, the `Client` on
//! what it receives (as libpq does) and the `Server` on what its application sends.
//!
//! libpq refuses a DataRow that no RowDescription announced ("server sent data ("D" message)
//! without prior row description ("T" message)") and one whose column count is not the
//! announced one ("unexpected field count in "D" message"): both mean the two sides no longer
//! agree on the shape of a result. The rows are announced:
//!
//! - in a simple Query, by the RowDescription that opens each result set; a DataRow before it,
//!   or after the result set's CommandComplete, is an error;
//! - for an Execute, by the answer to a Describe of the same portal sent right before it (Bind,
//!   Describe, Execute is what libpq, psycopg and pgjdbc send): its RowDescription, or NoData,
//!   after which no row may come;
//! - for any other Execute (the application learnt the columns elsewhere, from a statement
//!   Describe as tokio-postgres does), by the result's first row: every later row must match it.
//!
//! Requests are told apart by a number the role gives each (the client's request id, the
//! server's count of requests). The expected count of the request in flight is also what the
//! `Client`'s row fast path compares each row with, in one comparison.

use crate::protocol::Request;

/// What a DataRow must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Expect {
    /// Nothing announced rows: a DataRow is an error.
    #[default]
    NoRows,
    /// Rows of this many columns.
    Columns(u16),
    /// Not announced: the first row sets the count.
    FirstRow,
}

impl Expect {
    fn announced(columns: Option<u16>) -> Self {
        columns.map_or(Self::NoRows, Self::Columns)
    }
}

/// A DataRow of `received` columns where `expected` were announced (`None`: no rows were).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mismatch {
    pub(crate) expected: Option<u16>,
    pub(crate) received: u16,
}

/// The column count expected of the request in flight, and what is needed to work it out for
/// the next ones.
#[derive(Debug, Default)]
pub(crate) struct Columns {
    /// The request `expect` belongs to; for any other it is worked out afresh.
    request: Option<u64>,
    expect: Expect,
    /// The answer to the last Describe of a portal.
    described: Expect,
    /// The last request sent was a Describe of the portal named in `portal`.
    describing: bool,
    /// That portal's name (kept to compare with the next Execute's; the unnamed portal, by far
    /// the most common, needs no memory).
    portal: Vec<u8>,
}

impl Columns {
    /// Notes a request being sent; `portal` is the portal a Describe or an Execute names.
    /// Returns whether the request is an Execute whose portal the request just before described.
    #[inline]
    pub(crate) fn sent(&mut self, kind: Request, portal: &[u8]) -> bool {
        let described = kind == Request::Execute && self.describing && self.is_portal(portal);
        self.describing = kind == Request::DescribePortal;
        if self.describing && !self.is_portal(portal) {
            self.portal.clear();
            self.portal.extend_from_slice(portal);
        }
        described
    }

    /// Whether `portal` is the portal last described (the unnamed one without a comparison).
    #[inline]
    fn is_portal(&self, portal: &[u8]) -> bool {
        self.portal.len() == portal.len() && (portal.is_empty() || self.portal == portal)
    }

    /// Follows an answer other than DataRow (already checked against the protocol table) to
    /// request `request` of kind `kind`: `columns` is the RowDescription's field count, `None`
    /// for any other answer.
    #[inline]
    pub(crate) fn answered(&mut self, kind: Request, request: u64, columns: Option<u16>) {
        match kind {
            Request::DescribePortal => self.described = Expect::announced(columns),
            // Each result set of a Query announces its own rows; anything else ends one.
            Request::Query => {
                self.request = Some(request);
                self.expect = Expect::announced(columns);
            }
            _ => {}
        }
    }

    /// Checks a DataRow of `count` columns answering request `request` of kind `kind` (a Query
    /// or an Execute; `described`: an Execute whose portal the request before described).
    pub(crate) fn check_row(
        &mut self,
        kind: Request,
        request: u64,
        described: bool,
        count: u16,
    ) -> Result<(), Mismatch> {
        if self.request != Some(request) {
            self.request = Some(request);
            self.expect = match kind {
                Request::Execute if described => self.described,
                Request::Execute => Expect::FirstRow,
                _ => Expect::NoRows,
            };
        }
        let expected = match self.expect {
            Expect::Columns(n) if n == count => return Ok(()),
            Expect::FirstRow => {
                self.expect = Expect::Columns(count);
                return Ok(());
            }
            Expect::Columns(n) => Some(n),
            Expect::NoRows => None,
        };
        Err(Mismatch {
            expected,
            received: count,
        })
    }

    /// The column count a DataRow answering request `request` must have, when it is already
    /// known.
    #[inline]
    pub(crate) fn known(&self, request: u64) -> Option<u16> {
        match self.expect {
            Expect::Columns(n) if self.request == Some(request) => Some(n),
            _ => None,
        }
    }

    /// Whether the last request sent was a Describe of a portal (the Execute it describes may
    /// come next).
    pub(crate) fn describing(&self) -> bool {
        self.describing
    }

    /// Frees the portal name's memory.
    pub(crate) fn shrink(&mut self) {
        if self.portal.capacity() > 0 {
            self.describing = false;
            self.portal = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mismatch(expected: Option<u16>, received: u16) -> Result<(), Mismatch> {
        Err(Mismatch { expected, received })
    }

    #[test]
    fn a_query_result_set_announces_its_rows() {
        let mut c = Columns::default();
        let q = Request::Query;
        assert_eq!(c.known(1), None);
        assert_eq!(c.check_row(q, 1, false, 1), mismatch(None, 1));
        c.answered(q, 1, Some(2));
        assert_eq!(c.known(1), Some(2));
        assert_eq!(c.check_row(q, 1, false, 2), Ok(()));
        assert_eq!(c.check_row(q, 1, false, 3), mismatch(Some(2), 3));
        // The result set ends: the next needs its own RowDescription.
        c.answered(q, 1, None);
        assert_eq!(c.known(1), None);
        assert_eq!(c.check_row(q, 1, false, 2), mismatch(None, 2));
        // A new request starts afresh.
        assert_eq!(c.known(2), None);
        c.answered(q, 2, Some(0));
        assert_eq!(c.check_row(q, 2, false, 0), Ok(()));
    }

    #[test]
    fn an_execute_follows_the_describe_of_its_portal_or_its_first_row() {
        let mut c = Columns::default();
        let e = Request::Execute;
        // Bind, Describe (portal "p"), Execute "p": the Describe's answer counts.
        assert!(!c.sent(Request::Bind, b""));
        assert!(!c.sent(Request::DescribePortal, b"p"));
        assert!(c.sent(e, b"p"));
        c.answered(Request::DescribePortal, 2, Some(3));
        assert_eq!(c.known(3), None, "known once the first row is checked");
        assert_eq!(c.check_row(e, 3, true, 3), Ok(()));
        assert_eq!(c.known(3), Some(3));
        assert_eq!(c.check_row(e, 3, true, 2), mismatch(Some(3), 2));

        // NoData: no row may come.
        c.answered(Request::DescribePortal, 4, None);
        assert_eq!(c.check_row(e, 5, true, 1), mismatch(None, 1));

        // Another portal, or something sent in between: the first row sets the count.
        assert!(!c.sent(Request::DescribePortal, b"a"));
        assert!(!c.sent(e, b"b"));
        assert!(!c.sent(Request::DescribePortal, b""));
        assert!(!c.sent(Request::Sync, b""));
        assert!(!c.sent(e, b""));
        assert_eq!(c.check_row(e, 6, false, 4), Ok(()));
        assert_eq!(c.check_row(e, 6, false, 4), Ok(()));
        assert_eq!(c.check_row(e, 6, false, 5), mismatch(Some(4), 5));
    }
}
