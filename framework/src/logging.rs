//! Structured request logs with `tracing`: one `request` and one `response` event per request,
//! inside a span that carries the request id, so every log line of the request has it.
//!
//! Secrets are never logged: headers other than `User-Agent` are not recorded at all
//! (`Authorization`, cookies), and query parameters with sensitive names (`password`,
//! `token`, `secret`, `api_key`, ...) are replaced by `[REDACTED]`.

use std::time::Duration;

use axum::extract::Request;
use tracing::Span;

use crate::request_id::RequestId;

/// Output format for [`init`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line, for production log pipelines.
    Json,
    /// Human-readable, for development.
    Pretty,
}

impl Format {
    /// `ARBOR_LOG_FORMAT=json` selects JSON; anything else is human-readable.
    pub fn from_env() -> Self {
        match std::env::var("ARBOR_LOG_FORMAT").as_deref() {
            Ok("json") => Self::Json,
            _ => Self::Pretty,
        }
    }
}

/// Installs a global `tracing` subscriber with the level from `RUST_LOG` (default `info`),
/// and a panic hook that logs panics as `tracing` errors (inside the request's span, so with
/// its request id) instead of printing them to stderr. Does nothing if a subscriber is already
/// installed.
pub fn init(format: Format) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let installed = match format {
        // The request's span (with its id) goes on every line once; the list of all open
        // spans would repeat it, and re-serializing spans is most of the JSON formatter's cost.
        Format::Json => builder
            .fmt_fields(JsonLines)
            .event_format(JsonLines)
            .try_init(),
        Format::Pretty => builder.try_init(),
    };
    if installed.is_ok() {
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            tracing::error!(location = %location, "panic: {}", panic_message(info.payload()));
        }));
    }
}

/// One JSON object per line: `{"timestamp", "level", "target", "message", fields…, "span":
/// {"name", fields…}}` with the request's span (and so its `request_id`) on every line.
///
/// tracing-subscriber's own JSON format stores each span's fields as a JSON document and parses
/// it back for every event; this one stores them as ready-to-write JSON members, so an event
/// costs one pass of writing. [`init`] installs it for [`Format::Json`]; install it yourself with
/// `tracing_subscriber::fmt().fmt_fields(JsonLines).event_format(JsonLines)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<'writer> tracing_subscriber::fmt::FormatFields<'writer> for JsonLines {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: tracing_subscriber::fmt::format::Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = JsonMembers::new(&mut writer);
        fields.record(&mut visitor);
        visitor.result
    }

    fn add_fields(
        &self,
        current: &'writer mut tracing_subscriber::fmt::FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> std::fmt::Result {
        let mut more = String::new();
        let mut visitor = JsonMembers::new(&mut more);
        fields.record(&mut visitor);
        visitor.result?;
        if !current.fields.is_empty() && !more.is_empty() {
            current.fields.push(',');
        }
        current.fields.push_str(&more);
        Ok(())
    }
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use tracing_subscriber::fmt::time::FormatTime as _;

        let metadata = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        tracing_subscriber::fmt::time::SystemTime.format_time(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\",\"target\":", metadata.level())?;
        write_json_str(&mut writer, metadata.target())?;
        let mut visitor = JsonMembers::new(&mut writer);
        visitor.first = false;
        event.record(&mut visitor);
        visitor.result?;
        if let Some(span) = ctx.lookup_current() {
            writer.write_str(",\"span\":{\"name\":")?;
            write_json_str(&mut writer, span.name())?;
            let extensions = span.extensions();
            if let Some(fields) =
                extensions.get::<tracing_subscriber::fmt::FormattedFields<JsonLines>>()
            {
                if !fields.fields.is_empty() {
                    writer.write_char(',')?;
                    writer.write_str(&fields.fields)?;
                }
            }
            writer.write_char('}')?;
        }
        writer.write_str("}\n")
    }
}

/// Writes fields as JSON object members (`"name":value`, comma-separated, no braces).
struct JsonMembers<'a> {
    writer: &'a mut dyn std::fmt::Write,
    first: bool,
    result: std::fmt::Result,
}

impl<'a> JsonMembers<'a> {
    fn new(writer: &'a mut dyn std::fmt::Write) -> Self {
        Self {
            writer,
            first: true,
            result: Ok(()),
        }
    }

    fn member(
        &mut self,
        field: &tracing::field::Field,
        value: impl FnOnce(&mut dyn std::fmt::Write) -> std::fmt::Result,
    ) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            if !std::mem::take(&mut self.first) {
                self.writer.write_char(',')?;
            }
            write_json_str(self.writer, field.name())?;
            self.writer.write_char(':')?;
            value(self.writer)
        })();
    }
}

impl tracing::field::Visit for JsonMembers<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.member(field, |w| write_json_str(w, value));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        self.member(field, |w| write_json_str(w, &text));
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        if value.is_finite() {
            self.member(field, |w| write!(w, "{value}"));
        } else {
            self.member(field, |w| w.write_str("null"));
        }
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.member(field, |w| write!(w, "{value}"));
    }
}

/// A JSON string literal, escaped per RFC 8259.
fn write_json_str(writer: &mut dyn std::fmt::Write, value: &str) -> std::fmt::Result {
    writer.write_char('"')?;
    let mut start = 0;
    for (index, c) in value.char_indices() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if (c as u32) < 0x20 => "",
            _ => continue,
        };
        writer.write_str(&value[start..index])?;
        if escape.is_empty() {
            write!(writer, "\\u{:04x}", c as u32)?;
        } else {
            writer.write_str(escape)?;
        }
        start = index + c.len_utf8();
    }
    writer.write_str(&value[start..])?;
    writer.write_char('"')
}

/// The message of a panic payload (`&str` or `String`), for logs.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

pub(crate) fn make_span(request: &Request) -> Span {
    let id = request
        .extensions()
        .get::<RequestId>()
        .map(RequestId::as_str)
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    )
}

pub(crate) fn on_request(request: &Request, _span: &Span) {
    let user_agent = request
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let query = request.uri().query().map(redact_query).unwrap_or_default();
    tracing::info!(query = %query, user_agent = %user_agent, "request");
}

pub(crate) fn on_response<B>(response: &http::Response<B>, latency: Duration, _span: &Span) {
    tracing::info!(
        status = response.status().as_u16(),
        duration_ms = latency.as_secs_f64() * 1000.0,
        "response"
    );
}

/// Parameter names are compared lower-cased with `-`, `_` and `.` removed, so `accessToken`,
/// `access_token` and `X-Api-Key` are all caught.
const SENSITIVE_PARTS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "token",
    "secret",
    "apikey",
    "authorization",
    "signature",
    "session",
    "cookie",
    "credential",
    "privatekey",
];
const SENSITIVE_NAMES: &[&str] = &[
    "pwd", "pass", "key", "auth", "sig", "code", "otp", "pin", "jwt",
];

fn is_sensitive(name: &str) -> bool {
    let normalized: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    SENSITIVE_PARTS.iter().any(|part| normalized.contains(part))
        || SENSITIVE_NAMES.iter().any(|exact| normalized == *exact)
}

/// The query string with the values of sensitive parameters replaced by `[REDACTED]`.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
            if is_sensitive(&decoded) && !value.is_empty() {
                format!("{name}=[REDACTED]")
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::{redact_query, JsonLines};
    use std::sync::{Arc, Mutex};

    #[test]
    fn json_lines_are_valid_json_with_the_span_on_every_line() {
        let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonLines)
            .event_format(JsonLines)
            .with_writer(move || WriterHandle(writer.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                request_id = "r-1",
                attempt = tracing::field::Empty
            );
            let _entered = span.enter();
            span.record("attempt", 2_u64);
            tracing::info!(
                status = 200_u16,
                ok = true,
                ratio = 0.5,
                "done \"quoted\"\nline\u{1}"
            );
        });
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "done \"quoted\"\nline\u{1}");
        assert_eq!(line["status"], 200);
        assert_eq!(line["ok"], true);
        assert_eq!(line["ratio"], 0.5);
        assert_eq!(
            line["span"],
            serde_json::json!({"name": "request", "request_id": "r-1", "attempt": 2})
        );
        assert!(
            line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
    }

    struct WriterHandle(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for WriterHandle {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn redacts_sensitive_query_values_only() {
        assert_eq!(
            redact_query("page=2&password=hunter2&Access_Token=abc&user_api_key=k&q=token"),
            "page=2&password=[REDACTED]&Access_Token=[REDACTED]&user_api_key=[REDACTED]&q=token"
        );
        assert_eq!(redact_query("pass%77ord=x"), "pass%77ord=[REDACTED]");
        assert_eq!(
            redact_query("accessToken=a&X-Api-Key=b&sessionId=c&keyword=rust&sort=asc"),
            "accessToken=[REDACTED]&X-Api-Key=[REDACTED]&sessionId=[REDACTED]&keyword=rust&sort=asc"
        );
    }
}
