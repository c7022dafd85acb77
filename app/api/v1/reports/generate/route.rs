//! `POST /api/v1/reports/generate`: a report over a date range, streamed as progress events
//! (`started` → `processing` … → `complete` with the report), as in the guide's Step 1 — but
//! typed, with safe error messages, and cancelled if the client goes away.

use arbor::auth::{require_auth_with_state, Auth};
use arbor::{ApiError, Json, Response, State, Valid};
use serde::Deserialize;
use serde_json::json;
use validator::{Validate, ValidationError};

use crate::auth::{CurrentUser, Sessions};
use crate::services::reports::{authors_csv, parse_date, whole_days};
use crate::AppState;

#[derive(Deserialize, Validate, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportRequest {
    #[validate(nested)]
    date_range: DateRange,
    format: Format,
}

#[derive(Deserialize, Validate, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[validate(schema(function = "ordered_range"))]
pub struct DateRange {
    #[validate(custom(function = "calendar_date"))]
    from: String,
    #[validate(custom(function = "calendar_date"))]
    to: String,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Csv,
}

fn calendar_date(date: &str) -> Result<(), ValidationError> {
    parse_date(date).map(|_| ()).ok_or_else(|| {
        ValidationError::new("date").with_message("must be a date such as 2026-01-31".into())
    })
}

fn ordered_range(range: &DateRange) -> Result<(), ValidationError> {
    match (parse_date(&range.from), parse_date(&range.to)) {
        (Some(from), Some(to)) if from > to => {
            Err(ValidationError::new("range").with_message("`from` must not be after `to`".into()))
        }
        _ => Ok(()),
    }
}

#[arbor::handler(require_auth_with_state::<Sessions>)]
pub async fn POST(
    State(state): State<AppState>,
    Auth(current): Auth<CurrentUser>,
    Valid(Json(request)): Valid<Json<ReportRequest>>,
) -> Result<Response, ApiError> {
    current.require_admin()?;
    let Some((from, to)) = whole_days(&request.date_range.from, &request.date_range.to) else {
        return Err(ApiError::bad_request("invalid date range"));
    };
    let range = json!({ "from": request.date_range.from, "to": request.date_range.to });
    let format = request.format;
    Ok(arbor::progress::stream(move |progress| async move {
        progress.step(10, "counting users and posts").await;
        let summary = state.reports.summary(from, to).await?;
        progress.step(50, "ranking authors").await;
        let authors = state.reports.top_authors(from, to).await?;
        progress.step(90, "rendering").await;
        let report = match format {
            Format::Json => {
                json!({ "format": "json", "range": range, "summary": summary, "topAuthors": authors })
            }
            Format::Csv => {
                json!({ "format": "csv", "range": range, "summary": summary, "csv": authors_csv(&authors) })
            }
        };
        Ok(report)
    }))
}

/// The stream's events: progress, then the report (its shape depends on `format`).
pub fn describe_POST(operation: &mut arbor::openapi::DocumentBuilder) {
    operation.progress_stream::<serde_json::Value>();
    operation.request_example(json!({
        "dateRange": { "from": "2026-01-01", "to": "2026-01-31" },
        "format": "json",
    }));
}
