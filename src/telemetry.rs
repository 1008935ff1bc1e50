//! Logging: `tracing` events to stderr, filtered by the `TRUC_LOG` environment variable
//! (`RUST_LOG` syntax, e.g. `TRUC_LOG=truc=debug`); default `warn`.
//!
//! Two formats ([`LogFormat`], `truc --log-format`):
//! - `text`: one human-readable line per event, its spans as a prefix
//!   (`request{id=… agency=…}: …`);
//! - `json`: one JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`,
//!   `fields` (the event's), `span` (the innermost span: `name` and its fields) and `spans`
//!   (every enclosing span, outermost first). So the request id (`id`) and the `agency` of
//!   the `request` span are on every line logged while a request is handled.
//!
//! Lines about one message carry its id in the event field `message` (`message = %id`),
//! which is also the name tracing gives an event's text. The text formatter prints both
//! bare; the JSON formatter keeps the text as `fields.message` and the id as
//! `fields.message_id`, where the default `tracing-subscriber` JSON formatter would keep
//! only one of them.
//!
//! Not guaranteed: the order of keys, and the representation of values that are neither
//! strings, numbers nor booleans (they are written as their `Debug` text).

use std::fmt;
use std::io;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, with the fields of the current span and of every span
    /// around it.
    Json,
}

/// The filter from `TRUC_LOG`, or `warn`.
fn filter() -> EnvFilter {
    EnvFilter::try_from_env("TRUC_LOG").unwrap_or_else(|_| EnvFilter::new("warn"))
}

/// A subscriber writing `format` to `writer`, filtered by `filter`; text in colour only
/// when `ansi`.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            builder
                .fmt_fields(JsonFields::new())
                .event_format(JsonLines)
                .finish(),
        ),
    }
}

/// Installs the subscriber (stderr, `format`) once; later calls do nothing. Text is in
/// colour only when stderr is a terminal (a log file gets plain lines).
pub fn init(format: LogFormat) {
    let ansi = io::IsTerminal::is_terminal(&io::stderr());
    let sub = subscriber(format, filter(), io::stderr, ansi);
    let _ = tracing::subscriber::set_global_default(sub);
}

/// The `json` format: one object per event (see the module docs). Span fields are kept by
/// [`JsonFields`] as JSON text in each span's extensions, updated by `Span::record`.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        line.insert("timestamp".into(), Value::String(timestamp));
        line.insert("level".into(), Value::String(meta.level().to_string()));
        line.insert("target".into(), Value::String(meta.target().to_owned()));
        let mut fields = EventFields::default();
        event.record(&mut fields);
        line.insert("fields".into(), Value::Object(fields.0));
        let mut spans = Vec::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let mut object = Map::new();
                object.insert("name".into(), Value::String(span.name().to_owned()));
                if let Some(f) = span.extensions().get::<FormattedFields<N>>() {
                    if let Ok(Value::Object(values)) = serde_json::from_str::<Value>(f) {
                        object.extend(values);
                    }
                }
                spans.push(Value::Object(object));
            }
        }
        if let Some(current) = spans.last() {
            line.insert("span".into(), current.clone());
            line.insert("spans".into(), Value::Array(spans));
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// An event's fields as JSON values; a second `message` (the message id next to the
/// event's text) becomes `message_id`.
#[derive(Default)]
struct EventFields(Map<String, Value>);

impl EventFields {
    fn put(&mut self, field: &Field, value: Value) {
        let name = match field.name() {
            "message" if self.0.contains_key("message") => "message_id",
            name => name,
        };
        self.0.insert(name.to_owned(), value);
    }
}

impl Visit for EventFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    fn logged(format: LogFormat, f: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let sub = subscriber(format, EnvFilter::new("info"), buffer.clone(), false);
        tracing::subscriber::with_default(sub, f);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    /// What the hub logs while it handles a request: the span of `server.rs`, the agency
    /// recorded once authenticated, and an event about a message.
    fn a_request() {
        let span = tracing::info_span!(
            "request",
            id = %"1a2b3c4d00000001",
            method = %"POST",
            agency = tracing::field::Empty,
        );
        let _in = span.enter();
        tracing::Span::current().record("agency", "000.00.00.G12");
        tracing::info!(message = %"1a23484224700000", status = 201, "package accepted");
        tracing::debug!("filtered out");
    }

    #[test]
    fn json_lines_parse_and_carry_the_span_fields() {
        let out = logged(LogFormat::Json, a_request);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["level"], "INFO", "{v}");
        assert_eq!(v["fields"]["status"], 201, "{v}");
        assert_eq!(v["span"]["name"], "request", "{v}");
        assert_eq!(v["span"]["id"], "1a2b3c4d00000001", "{v}");
        assert_eq!(
            v["span"]["agency"], "000.00.00.G12",
            "recorded after the span was created: {v}"
        );
        assert_eq!(v["spans"][0]["id"], "1a2b3c4d00000001", "{v}");
        assert!(v["timestamp"].is_string(), "{v}");
        // The text and the message id are both kept.
        assert_eq!(v["fields"]["message"], "package accepted", "{v}");
        assert_eq!(v["fields"]["message_id"], "1a23484224700000", "{v}");
    }

    #[test]
    fn json_lines_outside_a_span_have_no_span() {
        let out = logged(LogFormat::Json, || {
            tracing::warn!(recipient = "000.00.00.H41", attempt = 3_u32, "push attempt");
        });
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["level"], "WARN", "{v}");
        assert_eq!(v["fields"]["message"], "push attempt", "{v}");
        assert_eq!(v["fields"]["recipient"], "000.00.00.H41", "{v}");
        assert_eq!(v["fields"]["attempt"], 3, "{v}");
        assert!(v.get("span").is_none() && v.get("spans").is_none(), "{v}");
    }

    #[test]
    fn text_lines_show_the_span_as_a_prefix() {
        let out = logged(LogFormat::Text, a_request);
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("request{id=1a2b3c4d00000001"), "{out}");
        assert!(out.contains(r#"agency="000.00.00.G12""#), "{out}");
        assert!(out.contains("status=201"), "{out}");
        assert!(
            serde_json::from_str::<serde_json::Value>(out.trim()).is_err(),
            "text is not JSON"
        );
    }
}
