// Starts GraphiQL against the URL that served the page. The fetcher's requests are
// same-origin, so the browser sends the session cookie; a bearer token can be set instead in
// GraphiQL's "Headers" tab: {"Authorization": "Bearer <token>"}.
(function () {
  "use strict";
  var fetcher = GraphiQL.createFetcher({ url: window.location.pathname });
  var defaultQuery = [
    "# Sign in first: POST /api/v1/login sets the session",
    "# cookie. Or put {\"Authorization\": \"Bearer <token>\"}",
    "# in the Headers tab below.",
    "",
    "query Users {",
    "  users(page: 1, limit: 20) {",
    "    id",
    "    name",
    "    email",
    "    role",
    "    posts(limit: 5) {",
    "      title",
    "    }",
    "  }",
    "}",
    "",
  ].join("\n");
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      defaultEditorToolsVisibility: true,
    })
  );
})();
