//! The syntax that Arbor's build step (`arbor-build`) and its macros (`arbor-macros`) share, so
//! that the two can never disagree about what a route file says:
//!
//! - [`attr`]: the middleware-list syntax of `#[arbor::handler(..)]` and `arbor::middleware!(..)`,
//!   and how a list is rendered for the `ROUTES` table;
//! - [`handler`]: what a handler is (an exported `pub async fn` named after an HTTP [`Method`]),
//!   with one message and one `help` for each way to get it wrong.
//!
//! Nothing here does I/O or knows about files: callers attach the locations.

#![warn(missing_docs)]

pub mod attr;
pub mod handler;
mod render;

pub use handler::Method;
pub use render::render_tokens;
