//! One type per protocol message, for both directions.

#[macro_use]
mod macros;

pub(crate) mod auth;
pub(crate) mod backend;
pub(crate) mod common;
pub(crate) mod fields;
pub(crate) mod frontend;
pub(crate) mod frontend_ref;
pub(crate) mod layout;
mod reencode;
pub(crate) mod rows;
pub(crate) mod startup;
