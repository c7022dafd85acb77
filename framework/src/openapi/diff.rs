//! Breaking changes between two OpenAPI documents: what a client written against the old one
//! could see fail against the new one.
//!
//! - a removed operation;
//! - a new required parameter, or a new required field in a request body;
//! - a request field or parameter narrowed: its type, its enum, or its bounds
//!   (`minLength`/`maxLength`, `minimum`/`maximum`, `minItems`/`maxItems`, a new `pattern`);
//! - a removed field, or a changed type, in a success response;
//! - a success status that is no longer answered (`201` becoming `200`).
//!
//! Additions that old clients ignore (operations, optional fields, response fields, enum
//! values in requests) are not breaking. Schemas are compared through their `$ref`s, each pair
//! of referenced schemas once.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

/// One breaking change, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakingChange {
    /// The operation: `GET /api/users/{id}`.
    pub operation: String,
    /// What changed.
    pub change: String,
}

impl fmt::Display for BreakingChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.operation, self.change)
    }
}

/// The breaking changes from `old` to `new`, in path and method order.
pub fn breaking_changes(old: &Value, new: &Value) -> Vec<BreakingChange> {
    let mut found = Vec::new();
    let empty = serde_json::Map::new();
    let old_paths = old["paths"].as_object().unwrap_or(&empty);
    for (path, old_methods) in old_paths {
        for (method, old_operation) in old_methods.as_object().unwrap_or(&empty) {
            let mut diff = Diff {
                old_document: old,
                new_document: new,
                operation: format!("{} {path}", method.to_uppercase()),
                found: &mut found,
                compared: BTreeSet::new(),
            };
            match new["paths"][path].get(method) {
                None => diff.report("the operation was removed".into()),
                Some(new_operation) => diff.operation(old_operation, new_operation),
            }
        }
    }
    found
}

/// Which way a schema is read: a request's must still accept what the old one did, a
/// response's must still give what the old one did.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

struct Diff<'a> {
    old_document: &'a Value,
    new_document: &'a Value,
    operation: String,
    found: &'a mut Vec<BreakingChange>,
    /// Pairs of `$ref`s already compared (recursive schemas end here).
    compared: BTreeSet<(String, String)>,
}

impl Diff<'_> {
    fn report(&mut self, change: String) {
        self.found.push(BreakingChange {
            operation: self.operation.clone(),
            change,
        });
    }

    fn operation(&mut self, old: &Value, new: &Value) {
        self.parameters(old, new);
        let (old_body, new_body) = (&old["requestBody"], &new["requestBody"]);
        if old_body.is_null() && new_body["required"] == true {
            self.report("a required request body was added".into());
        }
        if let Some(content) = new_body["content"].as_object() {
            for (media_type, new_media) in content {
                if let Some(old_media) = old_body["content"].get(media_type) {
                    self.schema(
                        &format!("request body ({media_type})"),
                        &old_media["schema"],
                        &new_media["schema"],
                        Direction::Request,
                    );
                }
            }
        }
        self.responses(&old["responses"], &new["responses"]);
    }

    fn parameters(&mut self, old: &Value, new: &Value) {
        let key = |p: &Value| {
            (
                p["in"].as_str().unwrap_or_default().to_owned(),
                p["name"].as_str().unwrap_or_default().to_owned(),
            )
        };
        let old_parameters: Vec<&Value> =
            old["parameters"].as_array().into_iter().flatten().collect();
        for new_parameter in new["parameters"].as_array().into_iter().flatten() {
            let (place, name) = key(new_parameter);
            let old_parameter = old_parameters
                .iter()
                .find(|p| key(p) == (place.clone(), name.clone()));
            match old_parameter {
                None if new_parameter["required"] == true && place != "path" => {
                    self.report(format!("a required {place} parameter `{name}` was added"));
                }
                None => {}
                Some(old_parameter) => {
                    if new_parameter["required"] == true && old_parameter["required"] != true {
                        self.report(format!("the {place} parameter `{name}` became required"));
                    }
                    self.schema(
                        &format!("{place} parameter `{name}`"),
                        &old_parameter["schema"],
                        &new_parameter["schema"],
                        Direction::Request,
                    );
                }
            }
        }
    }

    fn responses(&mut self, old: &Value, new: &Value) {
        let successes = |responses: &Value| -> BTreeSet<String> {
            responses
                .as_object()
                .into_iter()
                .flatten()
                .map(|(status, _)| status.clone())
                .filter(|status| status.starts_with('2'))
                .collect()
        };
        let (old_statuses, new_statuses) = (successes(old), successes(new));
        for status in old_statuses.difference(&new_statuses) {
            self.report(format!(
                "the success status {status} is no longer answered (now {})",
                new_statuses.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        for status in old_statuses.intersection(&new_statuses) {
            let content = old[status]["content"].as_object().into_iter().flatten();
            for (media_type, old_media) in content {
                match new[status]["content"].get(media_type) {
                    None => self.report(format!("the {status} response is no longer {media_type}")),
                    Some(new_media) => self.schema(
                        &format!("{status} response"),
                        &old_media["schema"],
                        &new_media["schema"],
                        Direction::Response,
                    ),
                }
            }
        }
    }

    /// `schema`, with a `$ref` into `components/schemas` followed; the name, when it was one.
    fn resolve<'v>(document: &'v Value, schema: &'v Value) -> (&'v Value, Option<String>) {
        match schema["$ref"].as_str() {
            Some(reference) => {
                let name = reference.rsplit('/').next().unwrap_or_default();
                (
                    &document["components"]["schemas"][name],
                    Some(reference.to_owned()),
                )
            }
            None => (schema, None),
        }
    }

    fn schema(&mut self, at: &str, old: &Value, new: &Value, direction: Direction) {
        let (old, old_ref) = Self::resolve(self.old_document, old);
        let (new, new_ref) = Self::resolve(self.new_document, new);
        if let (Some(old_ref), Some(new_ref)) = (old_ref, new_ref) {
            if !self.compared.insert((old_ref, new_ref)) {
                return;
            }
        }
        let (old_types, new_types) = (types(old), types(new));
        if !old_types.is_empty() {
            let lost: Vec<&String> = match direction {
                // A request type that no longer accepts what it did.
                Direction::Request if !new_types.is_empty() => {
                    old_types.difference(&new_types).collect()
                }
                // A response that may now give something else.
                Direction::Response => new_types.difference(&old_types).collect(),
                Direction::Request => Vec::new(),
            };
            if !lost.is_empty() {
                self.report(format!(
                    "{at}: the type changed from {} to {}",
                    list(&old_types),
                    list(&new_types)
                ));
            }
        }
        if direction == Direction::Request {
            self.narrowed(at, old, new);
        }
        let old_required = names(&old["required"]);
        let new_required = names(&new["required"]);
        let empty = serde_json::Map::new();
        let old_properties = old["properties"].as_object().unwrap_or(&empty);
        let new_properties = new["properties"].as_object().unwrap_or(&empty);
        match direction {
            Direction::Request => {
                for field in new_required.difference(&old_required) {
                    let change = if old_properties.contains_key(field) {
                        "became required"
                    } else {
                        "was added, required"
                    };
                    self.report(format!("{at}: the field `{field}` {change}"));
                }
            }
            Direction::Response => {
                for field in old_properties.keys() {
                    if !new_properties.contains_key(field) {
                        self.report(format!("{at}: the field `{field}` was removed"));
                    } else if old_required.contains(field) && !new_required.contains(field) {
                        self.report(format!("{at}: the field `{field}` may now be missing"));
                    }
                }
            }
        }
        for (field, old_field) in old_properties {
            if let Some(new_field) = new_properties.get(field) {
                self.schema(&format!("{at}.{field}"), old_field, new_field, direction);
            }
        }
        if let (Some(old_items), Some(new_items)) = (old.get("items"), new.get("items")) {
            self.schema(&format!("{at}[]"), old_items, new_items, direction);
        }
    }

    /// A request schema that accepts less than before: enum values dropped, bounds tightened.
    fn narrowed(&mut self, at: &str, old: &Value, new: &Value) {
        if let Some(new_enum) = new["enum"].as_array() {
            let dropped: Vec<&Value> = match old["enum"].as_array() {
                Some(old_enum) => old_enum.iter().filter(|v| !new_enum.contains(v)).collect(),
                None => Vec::new(),
            };
            if old["enum"].is_null() {
                self.report(format!(
                    "{at}: now limited to the values {}",
                    Value::from(new_enum.clone())
                ));
            } else if !dropped.is_empty() {
                let dropped: Vec<String> = dropped.iter().map(|v| v.to_string()).collect();
                self.report(format!("{at}: no longer accepts {}", dropped.join(", ")));
            }
        }
        for (bound, raised_is_narrower) in [
            ("minLength", true),
            ("minimum", true),
            ("exclusiveMinimum", true),
            ("minItems", true),
            ("maxLength", false),
            ("maximum", false),
            ("exclusiveMaximum", false),
            ("maxItems", false),
        ] {
            let (Some(new_bound), old_bound) = (new[bound].as_f64(), old[bound].as_f64()) else {
                continue;
            };
            let narrower = match old_bound {
                None => true,
                Some(old_bound) if raised_is_narrower => new_bound > old_bound,
                Some(old_bound) => new_bound < old_bound,
            };
            if narrower {
                self.report(format!(
                    "{at}: `{bound}` is now {} (was {})",
                    new[bound],
                    old_bound.map_or("none".to_owned(), |_| old[bound].to_string())
                ));
            }
        }
        if let Some(pattern) = new["pattern"].as_str() {
            if old["pattern"].as_str() != Some(pattern) {
                self.report(format!("{at}: must now match `{pattern}`"));
            }
        }
    }
}

/// The types a schema allows (`type` as a string or a list); empty when it does not say.
fn types(schema: &Value) -> BTreeSet<String> {
    match &schema["type"] {
        Value::String(one) => BTreeSet::from([one.clone()]),
        Value::Array(many) => many
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => BTreeSet::new(),
    }
}

fn names(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

fn list(types: &BTreeSet<String>) -> String {
    match types.len() {
        0 => "any".to_owned(),
        _ => types.iter().cloned().collect::<Vec<_>>().join(" or "),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A document with one `POST /items` operation: `body` as its request body schema and
    /// `response` as its `status` response's.
    fn document(parameters: Value, body: Value, status: &str, response: Value) -> Value {
        json!({
            "openapi": "3.1.0",
            "paths": { "/items": { "post": {
                "parameters": parameters,
                "requestBody": { "required": true, "content": { "application/json": { "schema": body } } },
                "responses": { status: { "description": "", "content": { "application/json": { "schema": response } } } },
            } } },
            "components": { "schemas": {
                "Item": { "type": "object", "required": ["id"], "properties": {
                    "id": { "type": "string" }, "name": { "type": "string" },
                } },
            } },
        })
    }

    fn changes(old: &Value, new: &Value) -> Vec<String> {
        breaking_changes(old, new)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn new_item() -> Value {
        json!({ "type": "object", "required": ["name"], "properties": {
            "name": { "type": "string", "maxLength": 50 },
            "kind": { "type": "string", "enum": ["a", "b"] },
        } })
    }

    fn item_ref() -> Value {
        json!({ "$ref": "#/components/schemas/Item" })
    }

    #[test]
    fn the_same_document_and_additions_are_not_breaking() {
        let old = document(json!([]), new_item(), "201", item_ref());
        assert_eq!(changes(&old, &old), Vec::<String>::new());
        // An optional parameter, an optional field, an enum value, a wider bound, a response
        // field, another operation: old clients go on working.
        let mut new = document(
            json!([{ "name": "dry_run", "in": "query", "schema": { "type": "boolean" } }]),
            json!({ "type": "object", "required": ["name"], "properties": {
                "name": { "type": "string", "maxLength": 80 },
                "kind": { "type": "string", "enum": ["a", "b", "c"] },
                "note": { "type": "string" },
            } }),
            "201",
            item_ref(),
        );
        new["components"]["schemas"]["Item"]["properties"]["created"] = json!({ "type": "string" });
        new["paths"]["/other"] = json!({ "get": { "responses": {} } });
        assert_eq!(changes(&old, &new), Vec::<String>::new());
    }

    #[test]
    fn removals_new_requirements_and_narrowing_are_breaking() {
        let old = document(
            json!([{ "name": "limit", "in": "query", "schema": { "type": "integer", "maximum": 100 } }]),
            new_item(),
            "201",
            item_ref(),
        );
        let mut new = document(
            json!([
                { "name": "limit", "in": "query", "required": true, "schema": { "type": "integer", "maximum": 50 } },
                { "name": "tenant", "in": "header", "required": true, "schema": { "type": "string" } },
            ]),
            json!({ "type": "object", "required": ["name", "kind", "owner"], "properties": {
                "name": { "type": "string", "maxLength": 20 },
                "kind": { "type": "string", "enum": ["a"] },
                "owner": { "type": "string" },
            } }),
            "200",
            item_ref(),
        );
        new["components"]["schemas"]["Item"]["properties"]
            .as_object_mut()
            .unwrap()
            .remove("name");
        assert_eq!(
            changes(&old, &new),
            [
                "POST /items: the query parameter `limit` became required",
                "POST /items: query parameter `limit`: `maximum` is now 50 (was 100)",
                "POST /items: a required header parameter `tenant` was added",
                "POST /items: request body (application/json): the field `kind` became required",
                "POST /items: request body (application/json): the field `owner` was added, required",
                "POST /items: request body (application/json).kind: no longer accepts \"b\"",
                "POST /items: request body (application/json).name: `maxLength` is now 20 (was 50)",
                "POST /items: the success status 201 is no longer answered (now 200)",
            ]
        );
        // The same response under the same status, with a field removed and a type changed.
        let mut new = old.clone();
        let item = &mut new["components"]["schemas"]["Item"];
        item["properties"].as_object_mut().unwrap().remove("name");
        item["properties"]["id"] = json!({ "type": "integer" });
        assert_eq!(
            changes(&old, &new),
            [
                "POST /items: 201 response: the field `name` was removed",
                "POST /items: 201 response.id: the type changed from string to integer",
            ]
        );
        // The operation itself.
        let mut new = old.clone();
        new["paths"] = json!({});
        assert_eq!(
            changes(&old, &new),
            ["POST /items: the operation was removed"]
        );
    }

    #[test]
    fn recursive_schemas_are_compared_once() {
        let node = json!({ "type": "object", "properties": {
            "children": { "type": "array", "items": { "$ref": "#/components/schemas/Node" } },
        } });
        let mut old = document(
            json!([]),
            json!({ "$ref": "#/components/schemas/Node" }),
            "200",
            json!({ "$ref": "#/components/schemas/Node" }),
        );
        old["components"]["schemas"]["Node"] = node;
        assert_eq!(changes(&old, &old), Vec::<String>::new());
    }
}
