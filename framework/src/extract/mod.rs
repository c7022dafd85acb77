//! Extractors whose rejections answer in the standard JSON error shape.

mod extension;
mod params;
mod path;

pub use extension::Extension;
pub use path::{Path, PathRejection};
