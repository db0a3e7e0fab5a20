// GraphiQL for Connected Vehicles. The form on top fills the API's two headers on every
// request GraphiQL sends: x-client-id, and authorization: Bearer <user token> (each input
// is named after its header). Queries and mutations send them as headers to this page's
// own URL (/graphql); subscriptions, over the WebSocket, as the connection's params,
// which the API reads the same way. They are kept in this tab's sessionStorage only
// (gone when the tab closes), sent nowhere else, and never put in a URL.
// The editor opens on the demo's example document (cv-example.graphql, beside this
// file) rather than GraphiQL's stock text, until the user has a query of their own
// (GraphiQL keeps it in localStorage).
(function () {
  "use strict";

  var STORE = "cv-graphiql.headers";
  var EXAMPLE = "graphiql/static/cv-example.graphql"; // relative to this page, as its files
  var form = document.getElementById("cv-credentials");
  var clientId = document.getElementById("cv-client-id");
  var token = document.getElementById("cv-token");
  var status = document.getElementById("cv-status");
  var endpoint = location.origin + location.pathname;
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  var generation = 0;
  var example = null; // the example's text
  var loaded = false; // whether the example was asked for: GraphiQL mounts after it

  function headersOf(saved) {
    var headers = {};
    if (saved) {
      headers[clientId.name] = saved.clientId;
      headers[token.name] = "Bearer " + saved.token;
    }
    return headers;
  }

  function render(saved) {
    if (!loaded) {
      return; // the example's answer renders, with the headers saved by then
    }
    var headers = headersOf(saved);
    var fetcher = GraphiQL.createFetcher({
      url: endpoint,
      headers: headers,
      subscriptionUrl: endpoint.replace(/^http/, "ws"),
      wsConnectionParams: headers,
    });
    // A new key mounts GraphiQL afresh, so it reads the schema again with the headers.
    generation += 1;
    root.render(
      React.createElement(GraphiQL, {
        key: generation,
        fetcher: fetcher,
        shouldPersistHeaders: false,
        defaultQuery: example || undefined, // without it, GraphiQL's own text
      }),
    );
    status.textContent = saved
      ? "Headers set for client " + saved.clientId
      : "No headers yet: fill in the client id and a user token, then Apply";
    status.className = saved ? "cv-set" : "cv-unset";
  }

  function load() {
    try {
      var saved = JSON.parse(sessionStorage.getItem(STORE));
      return saved && saved.clientId && saved.token ? saved : null;
    } catch (error) {
      return null;
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var saved = {
      clientId: clientId.value.trim(),
      token: token.value.trim().replace(/^Bearer\s+/i, ""),
    };
    if (!saved.clientId || !saved.token) {
      return;
    }
    sessionStorage.setItem(STORE, JSON.stringify(saved));
    render(saved);
  });

  document.getElementById("cv-forget").addEventListener("click", function () {
    sessionStorage.removeItem(STORE);
    form.reset();
    render(null);
  });

  var saved = load();
  if (saved) {
    clientId.value = saved.clientId;
    token.value = saved.token;
  }
  // The example first (one request to this origin), then GraphiQL, which reads its
  // default document once, when it mounts.
  fetch(EXAMPLE)
    .then(function (response) {
      return response.ok ? response.text() : null;
    })
    .catch(function () {
      return null;
    })
    .then(function (text) {
      example = text;
      loaded = true;
      render(load()); // the headers as they are now: Apply may have been pressed since
    });
})();
