// Calls the running reference app through the generated client (`client.ts`, written next to
// this file by tests/typescript_client.rs): create a user, log in, read it back, and get a
// typed validation error. Prints one line per step; any surprise throws (exit status 1).
import { Client } from "./client.js";

// Node's `process`, without depending on @types/node.
declare const process: { argv: string[] };

const baseUrl = process.argv[2];
if (!baseUrl) throw new Error("usage: node smoke.js BASE_URL");

const email = `ts-${Date.now()}@example.com`;
const password = "Str0ngPassword";
const anonymous = new Client({ baseUrl });

// Create a user: the success type is `SignedIn`, under the status the handler names (201).
const registered = await anonymous.postV1Register({
  body: { email, name: "Type Script", password },
});
if (!registered.ok) throw new Error(`register: ${registered.status} ${registered.error.message}`);
// The only success the contract lists: the type says 201, the answer must too.
const status: 201 = registered.status;
const created: string = registered.data.user.id;
console.log(`registered ${registered.data.user.email} (${created}), status ${status}`);

// Log in: `ok` narrows the answer to `{ status: 200, data: SignedIn }`.
const login = await anonymous.postV1Login({ body: { email, password } });
if (!login.ok) throw new Error(`login: ${login.status} ${login.error.error}`);
const token: string = login.data.token;
console.log(`logged in, token of ${token.length} characters`);

// Read it back with the token: `SessionInfo`, its credential a union of two literals.
const signedIn = new Client({ baseUrl, headers: () => ({ authorization: `Bearer ${token}` }) });
const session = await signedIn.getV1Session();
if (!session.ok) throw new Error(`session: ${session.status} ${session.error.error}`);
const via: "bearer" | "cookie" = session.data.credential;
if (session.data.user.id !== created || via !== "bearer") {
  throw new Error(`session: ${JSON.stringify(session.data)}`);
}
console.log(`read back ${session.data.user.email} via ${via}`);

// A validation error: narrowed by status, its code one of the 400's documented codes.
const invalid = await anonymous.postV1Register({
  body: { email: "not an email", name: "x", password },
});
if (invalid.ok) throw new Error("an invalid registration was accepted");
if (invalid.status === 400) {
  const code: "INVALID_JSON" | "VALIDATION_ERROR" = invalid.error.error;
  // A code the contract does not list for 400 would not compile:
  // @ts-expect-error
  const wrong: "UNAUTHORIZED" = invalid.error.error;
  void wrong;
  console.log(`refused with ${invalid.status} ${code}: ${JSON.stringify(invalid.error.details)}`);
} else {
  throw new Error(`invalid registration: status ${invalid.status}`);
}
