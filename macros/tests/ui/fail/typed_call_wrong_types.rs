// Typed calls (`TestClient::call`, `arbor::client::HttpClient::call`) take the handler's own
// types: each call below sends something the handler does not take.
use arbor::client::{Operation, Operations};
use arbor::test::TestClient;
use arbor::{Json, Path};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Params {
    pub id: u64,
}

#[derive(Serialize, Deserialize)]
pub struct CreateUser {
    pub name: String,
}

#[derive(Serialize, Deserialize)]
pub struct UpdateUser {
    pub name: Option<String>,
}

pub async fn update(Path(_params): Path<Params>, Json(input): Json<UpdateUser>) -> Json<UpdateUser> {
    Json(input)
}

/// An extractor of the app's own that does not say what a client sends for it.
pub struct Tenant;

pub async fn tenant_report(_tenant: Tenant) -> Json<String> {
    Json(String::new())
}

static OPERATIONS: Operations = Operations::new(&[Operation::new("PATCH", "/users/{id}", || {
    arbor::client::type_id_of(&update)
})]);

async fn calls(client: TestClient) {
    let client = client.with_operations(&OPERATIONS);
    // The body of another route.
    let _ = client.call(update, Params { id: 1 }, CreateUser { name: "x".into() });
    // A bare id where the handler takes its `Params`.
    let _ = client.call(update, 7_u64, UpdateUser { name: None });
    // A query the handler does not read.
    let _ = client
        .call(update, Params { id: 1 }, UpdateUser { name: None })
        .query(&[("page", 1)]);
    // An answer read as another type.
    let _: CreateUser = client
        .call(update, Params { id: 1 }, UpdateUser { name: None })
        .send()
        .await
        .value();
    let _ = client.call(tenant_report, (), ());
}

fn main() {
    let _ = calls;
}
