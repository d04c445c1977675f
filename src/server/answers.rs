//! The application's answers to frontend messages in the query phase: one method per backend
//! message, each checked against the request being answered.

use bytes::Bytes;

use super::{Current, Phase, Server};
use crate::codec::Encode;
use crate::error::UsageError;
use crate::message::backend::{BackendMessage, CommandComplete, CopyResponse};
use crate::message::common::TransactionStatus;
use crate::message::fields::ErrorFields;
use crate::message::rows::{DataRow, ParameterDescription, RowDescription};

impl Server {
    // ---- (C) answers: queries ----

    fn answering(&self, command: &'static str) -> Result<Current, UsageError> {
        if !matches!(self.phase, Phase::Ready) || self.error.is_some() {
            return Err(self.not_allowed(command));
        }
        self.current.ok_or(UsageError::NotAllowed {
            command,
            state: "idle (no request to answer)",
        })
    }

    fn send(&mut self, m: &BackendMessage) {
        m.encode(&mut self.out);
    }

    /// ParseComplete: answers Parse.
    pub fn parse_complete(&mut self) -> Result<(), UsageError> {
        match self.answering("send ParseComplete")? {
            Current::Parse => {
                self.send(&BackendMessage::ParseComplete);
                self.current = None;
                Ok(())
            }
            _ => Err(self.not_allowed("send ParseComplete")),
        }
    }

    /// BindComplete: answers Bind.
    pub fn bind_complete(&mut self) -> Result<(), UsageError> {
        match self.answering("send BindComplete")? {
            Current::Bind => {
                self.send(&BackendMessage::BindComplete);
                self.current = None;
                Ok(())
            }
            _ => Err(self.not_allowed("send BindComplete")),
        }
    }

    /// CloseComplete: answers Close.
    pub fn close_complete(&mut self) -> Result<(), UsageError> {
        match self.answering("send CloseComplete")? {
            Current::Close => {
                self.send(&BackendMessage::CloseComplete);
                self.current = None;
                Ok(())
            }
            _ => Err(self.not_allowed("send CloseComplete")),
        }
    }

    /// ParameterDescription: first half of the answer to Describe of a statement.
    pub fn parameter_description(&mut self, types: &[u32]) -> Result<(), UsageError> {
        match self.answering("send ParameterDescription")? {
            Current::DescribeStatement {
                described_params: false,
            } => {
                let m = ParameterDescription::new(types)?;
                m.encode(&mut self.out);
                self.current = Some(Current::DescribeStatement {
                    described_params: true,
                });
                Ok(())
            }
            _ => Err(self.not_allowed("send ParameterDescription")),
        }
    }

    /// RowDescription: answers Describe (after ParameterDescription for a statement), or starts
    /// a result set of a simple Query.
    pub fn row_description(&mut self, description: &RowDescription) -> Result<(), UsageError> {
        match self.answering("send RowDescription")? {
            Current::DescribeStatement {
                described_params: true,
            }
            | Current::DescribePortal => {
                description.encode(&mut self.out);
                self.current = None;
                Ok(())
            }
            Current::Query => {
                description.encode(&mut self.out);
                Ok(())
            }
            _ => Err(self.not_allowed("send RowDescription")),
        }
    }

    /// NoData: answers Describe of something that returns no rows.
    pub fn no_data(&mut self) -> Result<(), UsageError> {
        match self.answering("send NoData")? {
            Current::DescribeStatement {
                described_params: true,
            }
            | Current::DescribePortal => {
                self.send(&BackendMessage::NoData);
                self.current = None;
                Ok(())
            }
            _ => Err(self.not_allowed("send NoData")),
        }
    }

    /// DataRow: one row of a Query's or an Execute's result. `None` is NULL.
    pub fn data_row(&mut self, values: &[Option<&[u8]>]) -> Result<(), UsageError> {
        match self.answering("send DataRow")? {
            Current::Query | Current::Execute => {
                DataRow::encode_values(&mut self.out, values)?;
                Ok(())
            }
            _ => Err(self.not_allowed("send DataRow")),
        }
    }

    /// CommandComplete: ends a statement of a Query, answers Execute, or ends a COPY.
    pub fn command_complete(&mut self, tag: &str) -> Result<(), UsageError> {
        let current = self.answering("send CommandComplete")?;
        let next = match current {
            Current::Query => Some(Current::Query),
            Current::Execute => None,
            Current::CopyIn {
                client_done: true, ..
            }
            | Current::CopyOut {
                server_done: true, ..
            }
            | Current::CopyBoth {
                client_done: true,
                server_done: true,
                ..
            } => current.after_end(),
            _ => return Err(self.not_allowed("send CommandComplete")),
        };
        CommandComplete::encode_str(&mut self.out, tag)?;
        self.current = next;
        Ok(())
    }

    /// EmptyQueryResponse: the query string (or portal) was empty.
    pub fn empty_query_response(&mut self) -> Result<(), UsageError> {
        match self.answering("send EmptyQueryResponse")? {
            Current::Query => {}
            Current::Execute => self.current = None,
            _ => return Err(self.not_allowed("send EmptyQueryResponse")),
        }
        self.send(&BackendMessage::EmptyQueryResponse);
        Ok(())
    }

    /// PortalSuspended: Execute's row limit was reached.
    pub fn portal_suspended(&mut self) -> Result<(), UsageError> {
        match self.answering("send PortalSuspended")? {
            Current::Execute => {
                self.send(&BackendMessage::PortalSuspended);
                self.current = None;
                Ok(())
            }
            _ => Err(self.not_allowed("send PortalSuspended")),
        }
    }

    /// ErrorResponse: the current request failed. After an extended-query message, the machine
    /// discards what follows until Sync. With no request in flight, it is sent as is (for
    /// example a FATAL before closing).
    pub fn error_response(&mut self, fields: &ErrorFields) -> Result<(), UsageError> {
        if !matches!(self.phase, Phase::Ready) || self.error.is_some() {
            return Err(self.not_allowed("send ErrorResponse"));
        }
        BackendMessage::ErrorResponse(fields.clone()).encode(&mut self.out);
        if let Some(c) = self.current {
            if c.is_extended() {
                self.ignore_till_sync = true;
            }
            self.current = match c {
                Current::FunctionCall { .. } => Some(Current::FunctionCall { answered: true }),
                other => other.after_end(),
            };
        }
        Ok(())
    }

    /// ReadyForQuery: answers Query, Sync or FunctionCall.
    pub fn ready_for_query(&mut self, status: TransactionStatus) -> Result<(), UsageError> {
        match self.answering("send ReadyForQuery")? {
            Current::Query | Current::Sync | Current::FunctionCall { answered: true } => {
                self.send(&BackendMessage::ReadyForQuery(status));
                self.status = status;
                self.current = None;
                Ok(())
            }
            _ => Err(self.not_allowed("send ReadyForQuery")),
        }
    }

    /// FunctionCallResponse: the result of a FunctionCall (`None` for NULL); ReadyForQuery follows.
    pub fn function_call_response(&mut self, value: Option<&[u8]>) -> Result<(), UsageError> {
        match self.answering("send FunctionCallResponse")? {
            Current::FunctionCall { answered: false } => {
                if let Some(v) = value {
                    crate::codec::check_value_len("result", v.len())?;
                }
                self.send(&BackendMessage::FunctionCallResponse(
                    value.map(Bytes::copy_from_slice),
                ));
                self.current = Some(Current::FunctionCall { answered: true });
                Ok(())
            }
            _ => Err(self.not_allowed("send FunctionCallResponse")),
        }
    }

    fn start_copy(&mut self, kind: u8, response: &CopyResponse) -> Result<(), UsageError> {
        let extended = match self.answering("start COPY")? {
            Current::Query => false,
            Current::Execute => true,
            _ => return Err(self.not_allowed("start COPY")),
        };
        let (m, c) = match kind {
            b'G' => (
                BackendMessage::CopyInResponse(response.clone()),
                Current::CopyIn {
                    extended,
                    client_done: false,
                },
            ),
            b'H' => (
                BackendMessage::CopyOutResponse(response.clone()),
                Current::CopyOut {
                    extended,
                    server_done: false,
                },
            ),
            _ => (
                BackendMessage::CopyBothResponse(response.clone()),
                Current::CopyBoth {
                    extended,
                    client_done: false,
                    server_done: false,
                },
            ),
        };
        m.encode(&mut self.out);
        self.current = Some(c);
        Ok(())
    }

    /// CopyInResponse: starts COPY FROM STDIN; CopyData, CopyDone or CopyFail events follow.
    pub fn copy_in_response(&mut self, response: &CopyResponse) -> Result<(), UsageError> {
        self.start_copy(b'G', response)
    }

    /// CopyOutResponse: starts COPY TO STDOUT; send [`Server::copy_data`], then
    /// [`Server::copy_done`] and [`Server::command_complete`].
    pub fn copy_out_response(&mut self, response: &CopyResponse) -> Result<(), UsageError> {
        self.start_copy(b'H', response)
    }

    /// CopyBothResponse: starts a two-way copy (streaming replication).
    pub fn copy_both_response(&mut self, response: &CopyResponse) -> Result<(), UsageError> {
        self.start_copy(b'W', response)
    }

    /// CopyData from the server, during COPY TO STDOUT or CopyBoth.
    pub fn copy_data(&mut self, data: &[u8]) -> Result<(), UsageError> {
        match self.answering("send CopyData")? {
            Current::CopyOut {
                server_done: false, ..
            }
            | Current::CopyBoth {
                server_done: false, ..
            } => {
                crate::codec::check_body("CopyData", data.len())?;
                crate::codec::tagged(&mut self.out, b'd', data.len(), |o| {
                    bytes::BufMut::put_slice(o, data)
                });
                Ok(())
            }
            _ => Err(self.not_allowed("send CopyData")),
        }
    }

    /// CopyDone from the server.
    pub fn copy_done(&mut self) -> Result<(), UsageError> {
        match self.answering("send CopyDone")? {
            Current::CopyOut {
                extended,
                server_done: false,
            } => {
                self.current = Some(Current::CopyOut {
                    extended,
                    server_done: true,
                })
            }
            Current::CopyBoth {
                extended,
                client_done,
                server_done: false,
            } => {
                self.current = Some(Current::CopyBoth {
                    extended,
                    client_done,
                    server_done: true,
                })
            }
            _ => return Err(self.not_allowed("send CopyDone")),
        }
        self.send(&BackendMessage::CopyDone);
        Ok(())
    }
}
