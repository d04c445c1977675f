//! The number of columns each DataRow must have, checked as libpq checks it.
//!
//! libpq refuses a DataRow that no RowDescription announced ("server sent data ("D" message)
//! without prior row description ("T" message)") and one whose column count is not the
//! announced one ("unexpected field count in "D" message"): both mean the server and the client
//! no longer agree on the shape of a result. The rows are announced:
//!
//! - in a simple Query, by the RowDescription that opens each result set; a DataRow before it,
//!   or after the result set's CommandComplete, is an error;
//! - for an Execute, by the answer to a Describe of the same portal sent right before it (Bind,
//!   Describe, Execute is what libpq, psycopg and pgjdbc send): its RowDescription, or NoData,
//!   after which no row may come;
//! - for any other Execute (the application learnt the columns elsewhere, from a statement
//!   Describe as tokio-postgres does), by the result's first row: every later row must match it.
//!
//! The expected count of the request in flight is also what [`super::Client`]'s row fast path
//! compares each row with, in one comparison.

use super::pipeline::{Kind, Pending, RequestId};
use crate::decoder::BackendLent;
use crate::error::Error;
use crate::message::backend::BackendMessage;

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

/// The column count expected of the request in flight, and what is needed to work it out for
/// the next ones.
#[derive(Debug, Default)]
pub(crate) struct Columns {
    /// The request `expect` belongs to; for any other it is worked out afresh.
    request: Option<RequestId>,
    expect: Expect,
    /// The answer to the last Describe of a portal.
    described: Expect,
    /// The last request sent was a Describe of the portal named in `portal`.
    describing: bool,
    /// That portal's name (kept to compare with the next Execute's; the unnamed portal, by far
    /// the most common, needs no memory).
    portal: String,
}

impl Columns {
    /// Notes a request being sent; `portal` is the portal a Describe or an Execute names.
    /// Returns whether the request is an Execute whose portal the request just before described.
    pub(crate) fn sent(&mut self, kind: Kind, portal: &str) -> bool {
        let described = kind == Kind::Execute && self.describing && self.portal == portal;
        self.describing = kind == Kind::DescribePortal;
        if self.describing {
            self.portal.clear();
            self.portal.push_str(portal);
        }
        described
    }

    /// Follows an answer other than DataRow (already checked against the protocol table).
    pub(crate) fn answered(&mut self, front: Pending, lent: &BackendLent) {
        let announced = match lent {
            BackendLent::Message(BackendMessage::RowDescription(d)) => {
                // INVARIANT: a decoded RowDescription has at most i16::MAX fields.
                Expect::Columns(u16::try_from(d.len()).unwrap_or(u16::MAX))
            }
            _ => Expect::NoRows,
        };
        match front.kind {
            Kind::DescribePortal => self.described = announced,
            // Each result set of a Query announces its own rows; anything else ends one.
            Kind::Query => {
                self.request = Some(front.id);
                self.expect = announced;
            }
            _ => {}
        }
    }

    /// Checks a DataRow of `count` columns answering `front` (a Query or an Execute).
    pub(crate) fn check_row(&mut self, front: Pending, count: u16) -> Result<(), Error> {
        if self.request != Some(front.id) {
            self.request = Some(front.id);
            self.expect = match front.kind {
                Kind::Execute if front.described => self.described,
                Kind::Execute => Expect::FirstRow,
                _ => Expect::NoRows,
            };
        }
        match self.expect {
            Expect::Columns(n) if n == count => Ok(()),
            Expect::FirstRow => {
                self.expect = Expect::Columns(count);
                Ok(())
            }
            Expect::Columns(n) => Err(mismatch(Some(n), count)),
            Expect::NoRows => Err(mismatch(None, count)),
        }
    }

    /// The column count a DataRow answering `front` must have, when it is already known.
    #[inline]
    pub(crate) fn known(&self, front: Pending) -> Option<u16> {
        match self.expect {
            Expect::Columns(n) if self.request == Some(front.id) => Some(n),
            _ => None,
        }
    }

    /// Frees the portal name's memory.
    pub(crate) fn shrink(&mut self) {
        if self.portal.capacity() > 0 {
            self.describing = false;
            self.portal = String::new();
        }
    }
}

/// The error for a DataRow of `received` columns where `expected` were announced.
#[cold]
pub(crate) fn mismatch(expected: Option<u16>, received: u16) -> Error {
    Error::UnexpectedFieldCount { expected, received }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::rows::{FieldDescription, RowDescription};

    fn pending(id: u64, kind: Kind, described: bool) -> Pending {
        Pending {
            id: RequestId(id),
            kind,
            described,
        }
    }

    fn row_description(n: usize) -> BackendLent {
        let field = FieldDescription::new(b"a", 25);
        let fields = vec![field; n];
        BackendLent::Message(BackendMessage::RowDescription(
            RowDescription::new(&fields).unwrap(),
        ))
    }

    fn complete() -> BackendLent {
        BackendLent::Message(BackendMessage::EmptyQueryResponse)
    }

    #[test]
    fn a_query_result_set_announces_its_rows() {
        let mut c = Columns::default();
        let q = pending(1, Kind::Query, false);
        assert_eq!(c.known(q), None);
        assert_eq!(c.check_row(q, 1), Err(mismatch(None, 1)));
        c.answered(q, &row_description(2));
        assert_eq!(c.known(q), Some(2));
        assert_eq!(c.check_row(q, 2), Ok(()));
        assert_eq!(c.check_row(q, 3), Err(mismatch(Some(2), 3)));
        // The result set ends: the next needs its own RowDescription.
        c.answered(q, &complete());
        assert_eq!(c.known(q), None);
        assert_eq!(c.check_row(q, 2), Err(mismatch(None, 2)));
        // A new request starts afresh.
        let q2 = pending(2, Kind::Query, false);
        assert_eq!(c.known(q2), None);
        c.answered(q2, &row_description(0));
        assert_eq!(c.check_row(q2, 0), Ok(()));
    }

    #[test]
    fn an_execute_follows_the_describe_of_its_portal_or_its_first_row() {
        let mut c = Columns::default();
        // Bind, Describe (portal "p"), Execute "p": the Describe's answer counts.
        assert!(!c.sent(Kind::Bind, ""));
        assert!(!c.sent(Kind::DescribePortal, "p"));
        assert!(c.sent(Kind::Execute, "p"));
        c.answered(pending(2, Kind::DescribePortal, false), &row_description(3));
        let e = pending(3, Kind::Execute, true);
        assert_eq!(c.known(e), None, "known once the first row is checked");
        assert_eq!(c.check_row(e, 3), Ok(()));
        assert_eq!(c.known(e), Some(3));
        assert_eq!(c.check_row(e, 2), Err(mismatch(Some(3), 2)));

        // NoData: no row may come.
        c.answered(pending(4, Kind::DescribePortal, false), &complete());
        let e = pending(5, Kind::Execute, true);
        assert_eq!(c.check_row(e, 1), Err(mismatch(None, 1)));

        // Another portal, or something sent in between: the first row sets the count.
        assert!(!c.sent(Kind::DescribePortal, "a"));
        assert!(!c.sent(Kind::Execute, "b"));
        assert!(!c.sent(Kind::DescribePortal, ""));
        assert!(!c.sent(Kind::Sync, ""));
        assert!(!c.sent(Kind::Execute, ""));
        let e = pending(6, Kind::Execute, false);
        assert_eq!(c.check_row(e, 4), Ok(()));
        assert_eq!(c.check_row(e, 4), Ok(()));
        assert_eq!(c.check_row(e, 5), Err(mismatch(Some(4), 5)));
    }
}
