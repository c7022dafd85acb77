// Must not compile: each line misuses the generated client, and tests/typescript_client.rs
// checks that `tsc` names each of them.
import { Client } from "./client.js";

const client = new Client({ baseUrl: "http://127.0.0.1" });
// A body of the wrong shape: `name` is missing, `email` is a number.
await client.postV1Register({ body: { email: 1, password: "Str0ngPassword" } });
// A path parameter left out.
await client.getV1UsersById({});
const answer = await client.postV1Login({ body: { email: "a@b.c", password: "x" } });
// The data, before narrowing on `ok`.
console.log(answer.data.token);
