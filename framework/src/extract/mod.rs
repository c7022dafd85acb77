//! Extractors whose rejections answer in the standard JSON error shape.

mod extension;
mod field_errors;
mod form;
mod json;
mod params;
mod path;
mod query;
#[cfg(feature = "validate")]
mod validate;

pub use extension::Extension;
pub use form::Form;
pub use json::{from_slice, read_body, Json};
pub use path::{Path, PathRejection};
pub use query::Query;
#[cfg(feature = "validate")]
pub use validate::Valid;
