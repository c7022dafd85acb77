//! Structured request logs with `tracing`: one `request` and one `response` event per request,
//! inside a span that carries the request id, so every log line of the request has it.
//!
//! Secrets are never logged: headers other than `User-Agent` are not recorded at all
//! (`Authorization`, cookies), and query parameters with sensitive names (`password`,
//! `token`, `secret`, `api_key`, ...) are replaced by `[REDACTED]`.

use std::borrow::Cow;

#[cfg(feature = "logging")]
mod json;
mod request_log;
#[cfg(feature = "logging")]
mod writer;

#[cfg(feature = "logging")]
pub use json::JsonLines;
#[cfg(feature = "otel")]
pub(crate) use request_log::TARGET;
pub use request_log::{RequestLog, RequestLogLayer, RequestLogLines, ResponseFuture};

/// Output format for [`init`].
#[cfg(feature = "logging")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line, for production log pipelines.
    Json,
    /// Human-readable, for development.
    Pretty,
}

#[cfg(feature = "logging")]
impl Format {
    /// `ARBOR_LOG_FORMAT=json` selects JSON; anything else is human-readable.
    pub fn from_env() -> Self {
        match std::env::var("ARBOR_LOG_FORMAT").as_deref() {
            Ok("json") => Self::Json,
            _ => Self::Pretty,
        }
    }
}

#[cfg(feature = "logging")]
/// Installs a global `tracing` subscriber with the level from `RUST_LOG` (default `info`),
/// writing to stdout off the request path, and a panic hook that logs panics as `tracing`
/// errors (inside the request's span, so with its request id) instead of printing them to
/// stderr. Does nothing if a subscriber is already installed.
///
/// Lines are formatted on the thread that logs them, appended to a buffer, and written to
/// stdout by a thread of their own every 10 ms (so under load one `write` carries many lines):
/// a slow stdout (a pipe, a container runtime's log driver) never holds a request up. When more
/// than [`MAX_BUFFERED_BYTES`] wait, new lines are dropped and counted ([`dropped_lines`], and
/// `arbor_log_lines_dropped_total` in the metrics) rather than blocking the server.
///
/// Keep the returned [`LogGuard`] until the end of `main`: dropping it writes the lines still
/// queued.
///
/// ```no_run
/// #[tokio::main]
/// async fn main() -> std::io::Result<()> {
///     let _logs = arbor::logging::init(arbor::logging::Format::from_env());
///     // ... serve ...
///     Ok(())
/// } // `_logs` dropped here: the last lines are written
/// ```
pub fn init(format: Format) -> LogGuard {
    init_with(format, None::<tracing_subscriber::layer::Identity>)
}

#[cfg(feature = "logging")]
/// [`init`], with one more layer beside the log output: an exporter of spans such as
/// [`crate::otel::OtlpExport::layer`]. `RUST_LOG` filters the log lines only; the extra layer
/// filters for itself.
pub fn init_with<L>(format: Format, extra: Option<L>) -> LogGuard
where
    L: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let (writer, writer_thread) = writer::start(std::io::stdout());
    let dropped = writer.clone();
    let registry = tracing_subscriber::registry();
    let installed = match (extra, single_level()) {
        // One level for everything and no other layer: that level filters the whole
        // subscriber, decided once per call site. A filter of the output alone (needed beside
        // an extra layer, which filters for itself) is consulted on every span enter and exit
        // as well.
        (None, Some(level)) => registry
            .with(level)
            .with(output(format, ansi, writer, None))
            .try_init(),
        (extra, _) => {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            registry
                .with(extra)
                .with(output(format, ansi, writer, Some(filter)))
                .try_init()
        }
    };
    if installed.is_err() {
        return LogGuard {
            _writer_thread: None,
        };
    }
    let _ = DROPPED.set(dropped);
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(location = %location, "panic: {}", panic_message(info.payload()));
    }));
    LogGuard {
        _writer_thread: Some(writer_thread),
    }
}

/// The level of a `RUST_LOG` that names one level for every target (`info` when it is unset or
/// empty), and `None` for directives that only `EnvFilter` understands (`info,sqlx=warn`).
#[cfg(feature = "logging")]
fn single_level() -> Option<tracing_subscriber::filter::LevelFilter> {
    single_level_of(std::env::var("RUST_LOG").ok().as_deref())
}

#[cfg(feature = "logging")]
fn single_level_of(directives: Option<&str>) -> Option<tracing_subscriber::filter::LevelFilter> {
    match directives.map(str::trim) {
        None | Some("") => Some(tracing_subscriber::filter::LevelFilter::INFO),
        // Names only: `LevelFilter` also reads digits, which `EnvFilter` takes for targets.
        Some(text) if text.bytes().all(|byte| byte.is_ascii_alphabetic()) => text.parse().ok(),
        Some(_) => None,
    }
}

/// The log output in `format`, through `filter` when there is one.
#[cfg(feature = "logging")]
fn output<S>(
    format: Format,
    ansi: bool,
    writer: writer::BufferedWriter,
    filter: Option<tracing_subscriber::EnvFilter>,
) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use tracing_subscriber::Layer as _;
    let output = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer);
    let output = match format {
        Format::Json => output.fmt_fields(JsonLines).event_format(JsonLines).boxed(),
        Format::Pretty => output.boxed(),
    };
    match filter {
        Some(filter) => output.with_filter(filter).boxed(),
        None => output,
    }
}

#[cfg(feature = "logging")]
pub use writer::MAX_BUFFERED_BYTES;

#[cfg(feature = "logging")]
static DROPPED: std::sync::OnceLock<writer::BufferedWriter> = std::sync::OnceLock::new();

/// How many log lines [`init`]'s writer dropped because its queue was full (0 before `init`).
#[cfg(feature = "logging")]
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, writer::BufferedWriter::dropped_lines)
}

/// Keeps [`init`]'s log writer; dropping it writes the lines still buffered and stops the
/// writer.
#[cfg(feature = "logging")]
#[must_use = "dropping the guard stops the log writer: keep it until the end of `main` (`let _logs = arbor::logging::init(..)`)"]
#[derive(Debug)]
pub struct LogGuard {
    _writer_thread: Option<writer::WriterThread>,
}

/// The id of the trace a request belongs to (32 hex digits), in its extensions when traces are
/// exported ([`crate::otel`]): the request-log span records it as `trace_id`, so every log
/// line of the request can be found from its trace, and the reverse.
#[derive(Debug, Clone)]
pub struct TraceId(pub std::sync::Arc<str>);

/// The message of a panic payload (`&str` or `String`), for logs.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
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

/// The query string with the values of sensitive parameters replaced by `[REDACTED]`
/// (borrowed as it is when there are none).
pub fn redact_query(query: &str) -> Cow<'_, str> {
    let secret = |pair: &str| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        !value.is_empty()
            && is_sensitive(&percent_encoding::percent_decode_str(name).decode_utf8_lossy())
    };
    if !query.split('&').any(secret) {
        return Cow::Borrowed(query);
    }
    let mut redacted = String::with_capacity(query.len());
    for (index, pair) in query.split('&').enumerate() {
        if index > 0 {
            redacted.push('&');
        }
        if secret(pair) {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            redacted.push_str(name);
            redacted.push_str("=[REDACTED]");
        } else {
            redacted.push_str(pair);
        }
    }
    Cow::Owned(redacted)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::redact_query;

    #[cfg(feature = "logging")]
    #[test]
    fn only_a_bare_level_skips_env_filter() {
        use tracing_subscriber::filter::LevelFilter;

        use super::single_level_of;
        assert_eq!(single_level_of(None), Some(LevelFilter::INFO));
        assert_eq!(single_level_of(Some(" ")), Some(LevelFilter::INFO));
        assert_eq!(single_level_of(Some("warn")), Some(LevelFilter::WARN));
        assert_eq!(single_level_of(Some("DEBUG")), Some(LevelFilter::DEBUG));
        assert_eq!(single_level_of(Some("off")), Some(LevelFilter::OFF));
        for directives in [
            "info,sqlx=warn",
            "my_api=debug",
            "3",
            "[request]=info",
            "nonsense",
        ] {
            assert_eq!(single_level_of(Some(directives)), None, "{directives}");
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
        assert!(matches!(
            redact_query("page=2&q=token"),
            Cow::Borrowed("page=2&q=token")
        ));
    }
}
