//! Extractors whose rejections answer in the standard JSON error shape.

mod extension;
mod form;
mod json;
mod params;
mod path;
mod query;
mod validate;

pub use extension::Extension;
pub use form::Form;
pub use json::{from_slice, read_body, Json};
pub use path::{Path, PathRejection};
pub use query::Query;
pub use validate::Valid;
