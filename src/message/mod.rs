//! One type per protocol message, for both directions.

#[macro_use]
mod macros;

pub(crate) mod auth;
pub(crate) mod backend;
pub(crate) mod common;
pub(crate) mod extended;
pub(crate) mod fields;
pub(crate) mod frontend;
pub(crate) mod layout;
pub(crate) mod payload;
pub(crate) mod rows;
pub(crate) mod startup;
