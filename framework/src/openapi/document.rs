//! The document under construction: what generated code and the `describe` impls add to it.

use std::collections::BTreeMap;

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::transform::{transform_subschemas, Transform};
use schemars::{JsonSchema, Schema};
use serde_json::{json, Map, Value};

use super::OpenApi;

/// The name of the shared error schema in `components/schemas`.
pub(super) const ERROR_SCHEMA: &str = "Error";

/// Builds an OpenAPI 3.1 document one operation at a time. Generated code drives it (see
/// `routes::openapi()`); the [`super::DescribeRequest`] and [`super::DescribeResponse`] impls of
/// extractors and response types fill in the current operation.
pub struct DocumentBuilder {
    title: String,
    version: String,
    paths: BTreeMap<String, Map<String, Value>>,
    generator: SchemaGenerator,
    current: Option<Draft>,
}

/// The operation being described.
#[derive(Default)]
struct Draft {
    path: String,
    method: String,
    operation: Map<String, Value>,
    /// Path parameters in URL order: name, and whether a catch-all (many segments).
    path_parameters: Vec<(String, bool)>,
    /// The schema of the handler's `Path<T>`, matched to the parameters at the end.
    path_schema: Option<Schema>,
    query_parameters: Vec<Value>,
    header_parameters: Vec<Value>,
    request_body: Option<Value>,
    /// Success responses, by status.
    responses: BTreeMap<u16, Value>,
    /// Error responses, by status: the codes the route can answer with.
    errors: BTreeMap<u16, ErrorResponse>,
    /// Success statuses the handler's body names (`(StatusCode::CREATED, ..)`).
    success_statuses: Vec<u16>,
    /// Whether the handler may answer errors the document cannot list (an `ApiError`).
    other_errors: bool,
    /// The event types of its `text/event-stream` answer, by name, when it streams.
    events: Option<Vec<(String, Value)>>,
    /// Whether its success answers carry `ETag` and `Last-Modified`.
    validators: bool,
}

#[derive(Default)]
struct ErrorResponse {
    codes: Vec<&'static str>,
    headers: Vec<(&'static str, &'static str)>,
}

impl DocumentBuilder {
    /// An empty document for the API `title` at `version`.
    pub fn new(title: &str, version: &str) -> Self {
        let settings = SchemaSettings::draft2020_12().with(|settings| {
            settings.definitions_path = "/components/schemas".into();
            settings.meta_schema = None;
            settings.transforms.push(Box::new(IntegerBounds));
        });
        Self {
            title: title.to_owned(),
            version: version.to_owned(),
            paths: BTreeMap::new(),
            generator: settings.into_generator(),
            current: None,
        }
    }

    /// Starts the operation `method` (`get`, lowercase) on `path` (OpenAPI's `{name}` syntax).
    pub fn begin(&mut self, path: &str, method: &str, operation_id: &str) {
        self.end();
        let mut draft = Draft {
            path: path.to_owned(),
            method: method.to_owned(),
            ..Draft::default()
        };
        draft
            .operation
            .insert("operationId".into(), operation_id.into());
        self.current = Some(draft);
    }

    fn draft(&mut self) -> &mut Draft {
        self.current
            .as_mut()
            .expect("DocumentBuilder: describe calls come between `begin` and `end`")
    }

    /// The operation's tags.
    pub fn tags(&mut self, tags: &[&str]) {
        if !tags.is_empty() {
            self.draft().operation.insert("tags".into(), json!(tags));
        }
    }

    /// The handler's doc comment: its first paragraph is the summary, the rest the description.
    pub fn doc_comment(&mut self, comment: &str) {
        let (summary, description) = match comment.split_once("\n\n") {
            Some((summary, rest)) => (summary, Some(rest.trim())),
            None => (comment, None),
        };
        let operation = &mut self.draft().operation;
        operation.insert("summary".into(), summary.replace('\n', " ").into());
        if let Some(description) = description.filter(|d| !d.is_empty()) {
            operation.insert("description".into(), description.into());
        }
    }

    /// Marks the operation deprecated (`#[deprecated]` on the handler).
    pub fn deprecated(&mut self) {
        self.draft()
            .operation
            .insert("deprecated".into(), true.into());
    }

    /// A path parameter, in URL order; `catch_all` for `[...name]` and `[[...name]]`.
    pub fn path_parameter(&mut self, name: &str, catch_all: bool) {
        self.draft()
            .path_parameters
            .push((name.to_owned(), catch_all));
    }

    /// A success status named in the handler's body (`(StatusCode::CREATED, ..)`).
    pub fn success_status(&mut self, status: u16) {
        self.draft().success_statuses.push(status);
    }

    /// The middleware around the handler, as `routes::ROUTES` lists it: the answers each one
    /// can give are added to the operation's responses.
    pub fn middleware(&mut self, chain: &[&str]) {
        for layer in chain {
            // `arbor::rate_limit(limit = 5)`, `require_auth_with_state::<Sessions>`: the fn's
            // own name.
            let path = layer.split('(').next().unwrap_or(layer);
            let path = path.split("::<").next().unwrap_or(path);
            let name = path.rsplit("::").next().unwrap_or(path);
            match name.trim() {
                "require_auth" | "require_auth_with_state" => {
                    self.error(401, "UNAUTHORIZED");
                    self.error(403, "FORBIDDEN");
                }
                "rate_limit" => {
                    self.error(429, "RATE_LIMITED");
                    let errors = self.draft().errors.entry(429).or_default();
                    errors.headers.extend([
                        ("Retry-After", "Seconds until a request is allowed again."),
                        ("X-RateLimit-Limit", "Requests allowed per window."),
                        ("X-RateLimit-Remaining", "Requests left in this window."),
                        ("X-RateLimit-Reset", "Seconds until the window resets."),
                    ]);
                }
                "idempotency" => {
                    self.error(400, "INVALID_IDEMPOTENCY_KEY");
                    self.error(409, "IDEMPOTENCY_IN_FLIGHT");
                    self.error(422, "IDEMPOTENCY_KEY_REUSED");
                    // What `arbor::idempotency` accepts: 1 to 255 visible ASCII characters.
                    self.header_parameter_schema(
                        "Idempotency-Key",
                        "Makes a retried request answer as the first one did.",
                        json!({ "type": "string", "pattern": "^[!-~]{1,255}$" }),
                    );
                }
                "csrf" => self.error(403, "CSRF_FAILED"),
                "verify" | "verify_registered" => {
                    self.error(400, "INVALID_SIGNATURE");
                    self.error(400, "INVALID_PAYLOAD");
                    // `verify_registered` with the provider turned off.
                    self.error(404, "NOT_FOUND");
                }
                _ => {}
            }
        }
    }

    /// Errors the operation can answer with beyond those it lists: the handler returns an
    /// [`crate::ApiError`], which may carry any status. Documented as the `default` response,
    /// in the shared error schema.
    pub fn other_errors(&mut self) {
        self.draft().other_errors = true;
    }

    /// An error the operation can answer with: `status`, with the error `code`.
    pub fn error(&mut self, status: u16, code: &'static str) {
        let codes = &mut self.draft().errors.entry(status).or_default().codes;
        if !codes.contains(&code) {
            codes.push(code);
        }
    }

    /// A request header the operation reads.
    pub fn header_parameter(&mut self, name: &str, description: &str) {
        self.header_parameter_schema(name, description, json!({ "type": "string" }));
    }

    /// A request header the operation reads, its values described by `schema`.
    pub fn header_parameter_schema(&mut self, name: &str, description: &str, schema: Value) {
        let draft = self.draft();
        if draft
            .header_parameters
            .iter()
            .all(|p| p["name"].as_str() != Some(name))
        {
            draft.header_parameters.push(json!({
                "name": name,
                "in": "header",
                "description": description,
                "schema": schema,
            }));
        }
    }

    /// Marks the request header `name`, already described (by an extractor), as required:
    /// the handler refuses a request without it (as `Preconditions::require` does for `If-Match`).
    pub fn require_header(&mut self, name: &str) {
        for parameter in &mut self.draft().header_parameters {
            if parameter["name"].as_str() == Some(name) {
                parameter["required"] = true.into();
            }
        }
    }

    /// The schema of `T`, as a reference to `components/schemas` for named types.
    pub fn schema_for<T: JsonSchema>(&mut self) -> Schema {
        let mut schema = self.generator.subschema_for::<T>();
        // Named types get it with the definitions; an inline one (`u64`) here.
        IntegerBounds.transform(&mut schema);
        schema
    }

    /// `schema`, with a reference to `components/schemas` followed.
    fn resolve(&self, schema: &Schema) -> Option<Value> {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference.strip_prefix("#/components/schemas/")?;
                self.generator.definitions().get(name).cloned()
            }
            None => Some(schema.as_value().clone()),
        }
    }

    /// The handler reads path parameters into a `T`.
    pub fn path_schema<T: JsonSchema>(&mut self) {
        let schema = self.schema_for::<T>();
        self.draft().path_schema = Some(schema);
        self.error(400, "INVALID_PATH_PARAMS");
    }

    /// The handler reads the query string into a `T`: each of its fields is a parameter.
    pub fn query_schema<T: JsonSchema>(&mut self) {
        let schema = self.schema_for::<T>();
        let object = self.resolve(&schema).unwrap_or_default();
        let required: Vec<&str> = object["required"]
            .as_array()
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let parameters: Vec<Value> = object["properties"]
            .as_object()
            .map(|properties| {
                properties
                    .iter()
                    .map(|(name, schema)| {
                        let mut parameter = json!({
                            "name": name,
                            "in": "query",
                            "schema": schema,
                        });
                        if required.contains(&name.as_str()) {
                            parameter["required"] = true.into();
                        }
                        if let Some(description) = schema.get("description") {
                            parameter["description"] = description.clone();
                        }
                        parameter
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.draft().query_parameters.extend(parameters);
        self.error(400, "VALIDATION_ERROR");
    }

    /// The handler reads a body of `content_type` (`application/json`, ...) into a `T`.
    pub fn request_body<T: JsonSchema>(&mut self, content_type: &str) {
        let schema = self.schema_for::<T>();
        self.request_body_schema(content_type, schema.to_value());
    }

    /// The handler reads a body of `content_type` with this schema.
    pub fn request_body_schema(&mut self, content_type: &str, schema: Value) {
        self.draft().request_body = Some(json!({
            "required": true,
            "content": { content_type: { "schema": schema } },
        }));
        self.error(413, "PAYLOAD_TOO_LARGE");
        self.error(415, "UNSUPPORTED_MEDIA_TYPE");
    }

    /// A success response: `status` (or the status the handler's body names, when `None`)
    /// with a body of `content_type` and `schema`, or no body.
    pub fn response(&mut self, status: Option<u16>, body: Option<(&str, Value)>) {
        let draft = self.draft();
        let statuses = match status {
            Some(status) => vec![status],
            None if draft.success_statuses.is_empty() => vec![200],
            None => draft.success_statuses.clone(),
        };
        for status in statuses {
            let mut response = json!({ "description": reason(status) });
            if let Some((content_type, schema)) = &body {
                response["content"] = json!({ *content_type: { "schema": schema } });
            }
            draft.responses.insert(status, response);
        }
    }

    /// A `GET` or `HEAD` answers `304 Not Modified` (no body) when `If-None-Match` or
    /// `If-Modified-Since` names the current representation; other methods never do.
    pub fn not_modified(&mut self) {
        let draft = self.draft();
        if draft.method == "get" || draft.method == "head" {
            draft
                .responses
                .insert(304, json!({ "description": reason(304) }));
        }
    }

    /// The operation's success answers carry `ETag` and `Last-Modified`
    /// ([`crate::conditional::Validators`]).
    pub fn validators(&mut self) {
        self.draft().validators = true;
    }

    /// The operation answers with Server-Sent Events (`text/event-stream`); [`Self::event`]
    /// names their types.
    pub fn event_stream(&mut self) {
        self.draft().events.get_or_insert_with(Vec::new);
    }

    /// An event type of the operation's event stream: `event: name` whose `data:` is a JSON
    /// `T`.
    pub fn event<T: JsonSchema>(&mut self, name: &str) {
        let schema = self.schema_for::<T>().to_value();
        self.event_schema(name, schema);
    }

    /// An event type of the operation's event stream, its data described by `schema`.
    pub fn event_schema(&mut self, name: &str, schema: Value) {
        let events = self.draft().events.get_or_insert_with(Vec::new);
        events.retain(|(known, _)| known != name);
        events.push((name.to_owned(), schema));
    }

    /// The operation answers with an [`arbor::progress`](crate::progress) stream whose work
    /// returns a `T`: `started`, `processing`, then `complete` with the `T` or `error`.
    pub fn progress_stream<T: JsonSchema>(&mut self) {
        let result = self.schema_for::<T>().to_value();
        let status = |name: &str, progress: Value| {
            json!({
                "type": "object",
                "properties": {
                    "status": { "const": name },
                    "progress": progress,
                    "message": { "type": "string" },
                },
                "required": ["status", "progress"],
            })
        };
        let percent = json!({ "type": "integer", "minimum": 0, "maximum": 100 });
        self.event_schema("started", status("started", json!({ "const": 0 })));
        self.event_schema("processing", status("processing", percent));
        let mut complete = status("complete", json!({ "const": 100 }));
        complete["properties"]["result"] = result;
        complete["required"] = json!(["status", "progress", "result"]);
        self.event_schema("complete", complete);
        let error = json!({
            "type": "object",
            "properties": {
                "status": { "const": "error" },
                "error": { "type": "string" },
                "message": { "type": "string" },
                "details": {},
            },
            "required": ["status", "error", "message"],
        });
        self.event_schema("error", error);
    }

    /// The operation reads a `multipart/form-data` body: `fields` by name, each a text
    /// field or (`true`) a file.
    pub fn multipart_body(&mut self, fields: &[(&str, bool)]) {
        let properties: Map<String, Value> = fields
            .iter()
            .map(|(name, file)| {
                let schema = match file {
                    true => {
                        json!({ "type": "string", "contentMediaType": "application/octet-stream" })
                    }
                    false => json!({ "type": "string" }),
                };
                ((*name).to_owned(), schema)
            })
            .collect();
        let schema = json!({ "type": "object", "properties": properties });
        self.request_body_schema("multipart/form-data", schema);
        self.error(400, "INVALID_MULTIPART");
    }

    /// An example of the request body, for readers and for generated test data.
    pub fn request_example(&mut self, example: Value) {
        if let Some(body) = &mut self.draft().request_body {
            if let Some(content) = body["content"].as_object_mut() {
                for media in content.values_mut() {
                    media["example"] = example.clone();
                }
            }
        }
    }

    /// An example of the success answer under `status`.
    pub fn response_example(&mut self, status: u16, example: Value) {
        if let Some(response) = self.draft().responses.get_mut(&status) {
            if let Some(content) = response["content"].as_object_mut() {
                for media in content.values_mut() {
                    media["example"] = example.clone();
                }
            }
        }
    }

    /// Ends the current operation, if any, and adds it to the document.
    pub fn end(&mut self) {
        let Some(mut draft) = self.current.take() else {
            return;
        };
        if let Some(events) = draft.events.take() {
            let status = draft.success_statuses.first().copied().unwrap_or(200);
            draft
                .responses
                .insert(status, event_stream_response(status, events));
        }
        let mut operation = draft.operation;
        let mut parameters = Vec::new();
        let path_schema = draft
            .path_schema
            .as_ref()
            .and_then(|schema| self.resolve(schema));
        for (index, (name, catch_all)) in draft.path_parameters.iter().enumerate() {
            // OpenAPI has no style for segments joined by `/`: a catch-all is a string.
            let schema = match catch_all {
                true => None,
                false => path_schema.as_ref().and_then(|schema| {
                    parameter_schema(schema, name, index, draft.path_parameters.len())
                }),
            }
            .unwrap_or_else(|| json!({ "type": "string" }));
            let mut parameter = json!({
                "name": name,
                "in": "path",
                "required": true,
                "schema": schema,
            });
            if *catch_all {
                parameter["description"] =
                    "The remaining path segments, separated by `/` (each percent-encoded).".into();
            }
            parameters.push(parameter);
        }
        parameters.extend(draft.query_parameters);
        parameters.extend(draft.header_parameters);
        if !parameters.is_empty() {
            operation.insert("parameters".into(), parameters.into());
        }
        if let Some(body) = draft.request_body {
            operation.insert("requestBody".into(), body);
        }
        let mut responses = Map::new();
        for (status, response) in &draft.responses {
            let mut response = response.clone();
            if draft.validators && (200..300).contains(status) {
                response["headers"] = json!({
                    "ETag": {
                        "description": "The representation's entity tag, for `If-Match` and `If-None-Match`.",
                        "schema": { "type": "string" },
                    },
                    "Last-Modified": {
                        "description": "When the representation last changed, when known.",
                        "schema": { "type": "string" },
                    },
                });
            }
            responses.insert(status.to_string(), response);
        }
        if responses.is_empty() {
            responses.insert("200".into(), json!({ "description": "OK" }));
        }
        // Every route can time out, and every route answers a method it lacks with `405`.
        let mut errors = draft.errors;
        errors.entry(504).or_default().codes.push("TIMEOUT");
        errors.entry(500).or_default().codes.push("INTERNAL_ERROR");
        // A response the operation describes itself (`describe_<METHOD>`) wins over the
        // error the route's parts would answer under its status.
        for (status, error) in errors {
            responses
                .entry(status.to_string())
                .or_insert_with(|| error_response(status, &error));
        }
        if draft.other_errors {
            responses.insert(
                "default".into(),
                json!({
                    "description": "Another error, in the standard shape.",
                    "content": { "application/json": { "schema": {
                        "$ref": format!("#/components/schemas/{ERROR_SCHEMA}"),
                    } } },
                }),
            );
        }
        operation.insert("responses".into(), responses.into());
        self.paths
            .entry(draft.path)
            .or_default()
            .insert(draft.method, operation.into());
    }

    /// The finished document.
    pub fn finish(mut self) -> OpenApi {
        self.end();
        let mut schemas = self.generator.take_definitions(true);
        schemas.insert(ERROR_SCHEMA.into(), error_schema());
        let paths: Map<String, Value> = self
            .paths
            .into_iter()
            .map(|(path, methods)| (path, methods.into()))
            .collect();
        OpenApi::new(json!({
            "openapi": "3.1.0",
            "info": { "title": self.title, "version": self.version },
            "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
            "paths": paths,
            "components": { "schemas": schemas },
        }))
    }
}

/// The schema of path parameter `name` (the `index`th of `count`) within the schema of the
/// handler's `Path<T>`: a field of a struct, an item of a tuple, or the whole of a single value.
fn parameter_schema(schema: &Value, name: &str, index: usize, count: usize) -> Option<Value> {
    if let Some(property) = schema.pointer(&format!("/properties/{name}")) {
        return Some(property.clone());
    }
    if let Some(items) = schema.get("prefixItems").and_then(Value::as_array) {
        return items.get(index).cloned();
    }
    (count == 1 && schema.get("properties").is_none()).then(|| schema.clone())
}

fn error_response(status: u16, error: &ErrorResponse) -> Value {
    let mut schema = json!({ "$ref": format!("#/components/schemas/{ERROR_SCHEMA}") });
    if !error.codes.is_empty() {
        schema = json!({
            "allOf": [
                schema,
                { "properties": { "error": { "enum": error.codes } } },
            ],
        });
    }
    let mut response = json!({
        "description": reason(status),
        "content": { "application/json": { "schema": schema } },
    });
    if status == 405 {
        response["headers"] = json!({ "Allow": {
            "description": "The methods the route answers.",
            "schema": { "type": "string" },
        }});
    }
    for (name, description) in &error.headers {
        response["headers"][*name] = json!({
            "description": description,
            "schema": { "type": if *name == "Retry-After" { "integer" } else { "string" } },
        });
    }
    response
}

/// The one error shape every refusal has.
fn error_schema() -> Value {
    json!({
        "type": "object",
        "description": "Every error answer: a machine-readable code, a message for people, and details where there are some (the fields that failed validation).",
        "required": ["error", "message"],
        "properties": {
            "error": { "type": "string", "description": "A stable code, such as `VALIDATION_ERROR`." },
            "message": { "type": "string" },
            "details": {
                "description": "For `VALIDATION_ERROR`: messages by field (dotted paths) and for the input as a whole. Other codes may carry details of their own.",
                "type": "object",
                "properties": {
                    "fieldErrors": {
                        "type": "object",
                        "additionalProperties": { "type": "array", "items": { "type": "string" } },
                    },
                    "formErrors": { "type": "array", "items": { "type": "string" } },
                },
            },
        },
    })
}

fn reason(status: u16) -> String {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("Response")
        .to_owned()
}

/// A `text/event-stream` answer: each event an object of its name, its JSON data and its id,
/// one of the named types (any event, when none is named).
fn event_stream_response(status: u16, events: Vec<(String, Value)>) -> Value {
    let one_of: Vec<Value> = events
        .into_iter()
        .map(|(name, data)| {
            // An event's `data` is the text of its `data:` lines, JSON of the event's type.
            json!({
                "title": name,
                "type": "object",
                "properties": {
                    "event": { "const": name },
                    "id": { "type": "string" },
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": data,
                    },
                },
                "required": ["event", "data"],
            })
        })
        .collect();
    let mut schema = json!({
        "description": "Server-Sent Events: each `event:` name, its `id:` and its `data:`, JSON whose schema is `contentSchema`.",
        "type": "object",
    });
    if !one_of.is_empty() {
        schema["oneOf"] = one_of.into();
    }
    json!({
        "description": reason(status),
        "content": { "text/event-stream": { "schema": schema } },
    })
}

/// Adds the range of each fixed-width integer format (`uint64`: `0` to `18446744073709551615`)
/// where the schema sets none: a number outside it is refused by the extractor with `400`,
/// so a client reading the schema must know it.
#[derive(Debug, Clone, Copy)]
struct IntegerBounds;

impl Transform for IntegerBounds {
    fn transform(&mut self, schema: &mut Schema) {
        let bounds: Option<(Value, Value)> = match schema.get("format").and_then(Value::as_str) {
            Some("int8") => Some((i8::MIN.into(), i8::MAX.into())),
            Some("uint8") => Some((0.into(), u8::MAX.into())),
            Some("int16") => Some((i16::MIN.into(), i16::MAX.into())),
            Some("uint16") => Some((0.into(), u16::MAX.into())),
            Some("int32") => Some((i32::MIN.into(), i32::MAX.into())),
            Some("uint32") => Some((0.into(), u32::MAX.into())),
            Some("int64") => Some((i64::MIN.into(), i64::MAX.into())),
            Some("uint64") => Some((0.into(), u64::MAX.into())),
            _ => None,
        };
        if let (Some((minimum, maximum)), Some(object)) = (bounds, schema.as_object_mut()) {
            object.entry("minimum").or_insert(minimum);
            object.entry("maximum").or_insert(maximum);
        }
        transform_subschemas(self, schema);
    }
}
