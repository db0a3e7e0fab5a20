// GraphiQL for Connected Vehicles. The form on top fills the API's two headers on every
// request GraphiQL sends: x-client-id, and authorization: Bearer <user token> (each input
// is named after its header). Queries and mutations send them as headers to this page's
// own URL (/graphql); subscriptions, over the WebSocket, as the connection's params,
// which the API reads the same way. They are kept in this tab's sessionStorage only
// (gone when the tab closes), sent nowhere else, and never put in a URL.
(function () {
  "use strict";

  var STORE = "cv-graphiql.headers";
  var form = document.getElementById("cv-credentials");
  var clientId = document.getElementById("cv-client-id");
  var token = document.getElementById("cv-token");
  var status = document.getElementById("cv-status");
  var endpoint = location.origin + location.pathname;
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  var generation = 0;

  function headersOf(saved) {
    var headers = {};
    if (saved) {
      headers[clientId.name] = saved.clientId;
      headers[token.name] = "Bearer " + saved.token;
    }
    return headers;
  }

  function render(saved) {
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
  render(saved);
})();
