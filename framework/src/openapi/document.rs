//! The document under construction: what generated code and the `describe` impls add to it.

use std::collections::BTreeMap;

use schemars::generate::{SchemaGenerator, SchemaSettings};
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
                    self.header_parameter(
                        "Idempotency-Key",
                        "Makes a retried request answer as the first one did.",
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
                "schema": { "type": "string" },
            }));
        }
    }

    /// The schema of `T`, as a reference to `components/schemas` for named types.
    pub fn schema_for<T: JsonSchema>(&mut self) -> Schema {
        self.generator.subschema_for::<T>()
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

    /// Ends the current operation, if any, and adds it to the document.
    pub fn end(&mut self) {
        let Some(draft) = self.current.take() else {
            return;
        };
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
            responses.insert(status.to_string(), response.clone());
        }
        if responses.is_empty() {
            responses.insert("200".into(), json!({ "description": "OK" }));
        }
        // Every route can time out, and every route answers a method it lacks with `405`.
        let mut errors = draft.errors;
        errors.entry(504).or_default().codes.push("TIMEOUT");
        errors.entry(500).or_default().codes.push("INTERNAL_ERROR");
        for (status, error) in errors {
            responses.insert(status.to_string(), error_response(status, &error));
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
