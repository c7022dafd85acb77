//! The `details` of a `400 VALIDATION_ERROR`: errors by field and for the whole input, the
//! shape every extractor's rejection and `Valid<..>` share.

use std::collections::BTreeMap;

use http::StatusCode;
use serde::Serialize;

use crate::ApiError;

/// Field errors keyed by dotted path plus form-level errors, like Zod's `flatten()`.
#[derive(Debug, Default, Serialize)]
pub(crate) struct FieldErrors {
    #[serde(rename = "fieldErrors")]
    pub(super) fields: BTreeMap<String, Vec<String>>,
    #[serde(rename = "formErrors")]
    pub(super) form: Vec<String>,
}

impl FieldErrors {
    pub(crate) fn field(&mut self, path: &str, message: String) {
        self.fields
            .entry(path.to_owned())
            .or_default()
            .push(message);
    }

    pub(crate) fn form(&mut self, message: String) {
        self.form.push(message);
    }

    pub(crate) fn into_error(self, summary: &'static str) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", summary).with_details(self)
    }
}
